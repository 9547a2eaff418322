package index

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// RepairReport says what Repair found in a collection's write-ahead log and
// what it did.
type RepairReport struct {
	// Damage lists each damaged place in the log, in log order. A torn
	// tail (the end of the last write, never acknowledged) is one too.
	Damage []WALDamage
	// Replayed is how many intact write batches were applied on top of the
	// checkpoint, those after damage included.
	Replayed int
	// Lost is how many write batches the damage took (sequence numbers
	// missing between intact records); a lost tail is not counted.
	Lost uint64
	// Seq is the last write batch the repaired collection holds.
	Seq uint64
	// Backups are copies of the damaged segments as they were, named
	// <segment>.damaged, kept beside them for inspection; nothing reads
	// them and they may be deleted.
	Backups []string
}

// WALDamage is one damaged place in a WAL segment.
type WALDamage struct {
	// File is the segment; Offset is where the damage starts in it.
	File   string
	Offset int64
	// Reason says what is wrong there ("record checksum mismatch", …).
	Reason string
	// Resume is the offset of the next intact record in File, where
	// replay went on; 0 when none follows (the rest of File is lost).
	Resume int64
}

// Repair opens the collection in dir for writing (no other process may
// have it open: ErrLocked), salvages its write-ahead log and closes it. Open
// refuses a collection whose log is damaged before intact records (an error
// wrapping ErrCorrupt that names the file and offset), because cutting the
// log there would drop acknowledged writes; Repair instead applies every
// intact record, skipping the damaged bytes to the next record that checks,
// makes a checkpoint of the result and removes the old segments, after
// copying the damaged ones aside (RepairReport.Backups). The batches the
// damage took are lost (RepairReport.Lost). A collection without damage is
// opened and closed, nothing else. Damaged data files or CHECKPOINT are not
// repaired: that error is returned as Open returns it.
func Repair(dir string, opts ...Option) (RepairReport, error) {
	c, res, err := openWriter(dir, buildOptions(opts), replaySalvage)
	if err != nil {
		return RepairReport{}, err
	}
	rep := RepairReport{Replayed: res.replayed, Lost: res.lost, Backups: res.backups}
	for _, d := range res.damaged {
		rep.Damage = append(rep.Damage, WALDamage{File: d.path, Offset: d.off, Reason: d.reason, Resume: d.next})
	}
	rep.Seq = c.Stats().Seq
	err = c.Checkpoint(context.Background())
	if err == nil && len(res.damaged) > 0 {
		// A checkpoint with nothing new to record removes nothing: the
		// damaged segments go now; the log goes on at Seq+1.
		err = removeSegmentsThrough(dir, rep.Seq)
	}
	if err = errors.Join(err, c.Close()); err != nil {
		return rep, fmt.Errorf("embedd/index: repairing %s: %w", dir, err)
	}
	return rep, nil
}

// keepDamaged copies each segment named in damage to <segment>.damaged,
// synced, and returns the copies' paths.
func keepDamaged(damage []walDamage) ([]string, error) {
	var out []string
	for _, d := range damage {
		backup := d.path + ".damaged"
		if slices.Contains(out, backup) {
			continue
		}
		if err := copyFile(d.path, backup); err != nil {
			return out, err
		}
		out = append(out, backup)
	}
	return out, nil
}

// copyFile copies src to dst (replacing it) and syncs dst.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("embedd/index: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("embedd/index: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("embedd/index: %w", cerr)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("embedd/index: copying %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("embedd/index: syncing %s: %w", dst, err)
	}
	return nil
}
