package index

import (
	"encoding/binary"
	"hash/crc32"
)

// batch is one WAL record being built: the record header and the payload
// in one buffer, so the committer writes it as it is. Every op is validated
// as it is added; a batch with an invalid op is dropped whole.
type batch struct {
	buf  []byte
	nops int
}

func newBatch(sizeHint int) *batch {
	b := &batch{buf: make([]byte, walRecordHeaderSize+walBatchHeaderSize, walRecordHeaderSize+walBatchHeaderSize+sizeHint)}
	return b
}

// upsert validates r (what names it in errors) and adds it.
func (b *batch) upsert(r *Record, dim int, metric Metric, what where) error {
	if err := validID(r.ID, what); err != nil {
		return err
	}
	what.id = r.ID
	kind, meta, err := checkMetadata(r.Metadata, r.MetadataJSON, what)
	if err != nil {
		return err
	}
	start := len(b.buf)
	b.buf = append(b.buf, walOpUpsert)
	b.buf = binary.LittleEndian.AppendUint16(b.buf, uint16(len(r.ID)))
	b.buf = append(b.buf, r.ID...)
	b.buf = append(b.buf, kind)
	b.buf = binary.LittleEndian.AppendUint32(b.buf, uint32(len(meta)))
	b.buf = append(b.buf, meta...)
	if b.buf, err = appendVector(b.buf, r.Vector, dim, metric, what); err != nil {
		b.buf = b.buf[:start]
		return err
	}
	return b.added(what)
}

// delete validates id and adds its delete.
func (b *batch) delete(id string, what where) error {
	if err := validID(id, what); err != nil {
		return err
	}
	b.buf = append(b.buf, walOpDelete)
	b.buf = binary.LittleEndian.AppendUint16(b.buf, uint16(len(id)))
	b.buf = append(b.buf, id...)
	return b.added(what)
}

func (b *batch) added(what where) error {
	b.nops++
	if n := len(b.buf) - walRecordHeaderSize; n > maxWALRecord {
		return invalidf("%v: the batch is over %d bytes; send fewer records at a time", what, maxWALRecord)
	}
	return nil
}

// seal stamps seq and the checksum and returns the framed record.
func (b *batch) seal(seq uint64) []byte {
	p := b.buf[walRecordHeaderSize:]
	binary.LittleEndian.PutUint64(p[0:], seq)
	binary.LittleEndian.PutUint32(p[8:], uint32(b.nops))
	binary.LittleEndian.PutUint32(b.buf[0:], uint32(len(p)))
	binary.LittleEndian.PutUint32(b.buf[4:], crc32.Checksum(p, castagnoli))
	return b.buf
}

// payload is the record without its header.
func (b *batch) payload() []byte { return b.buf[walRecordHeaderSize:] }

// op is one decoded operation; its slices point into the payload.
type op struct {
	kind     byte
	id       []byte
	metaKind byte
	meta     []byte
	vec      []byte // dim little-endian float32, as stored
}

// decodeBatch parses a payload, appending its ops to ops[:0].
func decodeBatch(p []byte, dim int, ops []op) (uint64, []op, error) {
	ops = ops[:0]
	if len(p) < walBatchHeaderSize {
		return 0, ops, corruptf("batch of %d bytes is shorter than its header", len(p))
	}
	seq := binary.LittleEndian.Uint64(p)
	n := int(binary.LittleEndian.Uint32(p[8:]))
	p = p[walBatchHeaderSize:]
	short := func(i int) error { return corruptf("batch %d: op %d is cut short", seq, i) }
	for i := range n {
		if len(p) < 3 {
			return seq, ops, short(i)
		}
		o := op{kind: p[0]}
		idLen := int(binary.LittleEndian.Uint16(p[1:]))
		p = p[3:]
		if idLen == 0 || idLen > MaxIDBytes || len(p) < idLen {
			return seq, ops, corruptf("batch %d: op %d has a bad id length %d", seq, i, idLen)
		}
		o.id, p = p[:idLen:idLen], p[idLen:]
		switch o.kind {
		case walOpDelete:
		case walOpUpsert:
			if len(p) < 5 {
				return seq, ops, short(i)
			}
			o.metaKind = p[0]
			mlen := int(binary.LittleEndian.Uint32(p[1:]))
			p = p[5:]
			if o.metaKind > metaKindJSON || (o.metaKind == metaKindNone) != (mlen == 0) || mlen > len(p) {
				return seq, ops, corruptf("batch %d: op %d has bad metadata (kind %d, %d bytes)", seq, i, o.metaKind, mlen)
			}
			o.meta, p = p[:mlen:mlen], p[mlen:]
			if len(p) < 4*dim {
				return seq, ops, short(i)
			}
			o.vec, p = p[:4*dim:4*dim], p[4*dim:]
		default:
			return seq, ops, corruptf("batch %d: op %d has kind %d", seq, i, o.kind)
		}
		ops = append(ops, o)
	}
	if len(p) != 0 {
		return seq, ops, corruptf("batch %d: %d bytes after its %d ops", seq, len(p), n)
	}
	return seq, ops, nil
}
