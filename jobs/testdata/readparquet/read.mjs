// read.mjs FILE: prints each row of a Parquet file as a JSON line, read
// with hyparquet (no code shared with the Go writer).
import { readFileSync } from 'node:fs'
import { parquetReadObjects } from 'hyparquet'

const buf = readFileSync(process.argv[2])
const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)
const rows = await parquetReadObjects({ file })
for (const r of rows) {
  process.stdout.write(JSON.stringify({ id: r.id, embedding: Array.from(r.embedding) }) + '\n')
}
