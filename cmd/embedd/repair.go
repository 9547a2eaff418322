package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/embedd/embedd/index"
)

// repairCmd salvages the write-ahead log of a collection that Open refuses
// because it is damaged before intact records (index.Repair). The server
// must not have the collection open.
func repairCmd(args []string, stdout, stderr io.Writer) int {
	fs, dataDir := dataDirFlagSet("repair", stderr, "usage: embedd repair [flags] COLLECTION\n\nSalvages a collection whose write-ahead log is damaged before intact records\n(the server refuses to open it and says where): every intact record is kept,\nthe damaged bytes are skipped, and a copy of each damaged segment is left\nbeside it as <segment>.damaged. The server must not have the collection open.")
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	name := fs.Arg(0)
	dir, err := index.CollectionDir(dataDirOr(*dataDir), name)
	if err == nil {
		var rep index.RepairReport
		rep, err = index.Repair(dir, index.WithLogger(slog.New(slog.NewTextHandler(stderr, nil))))
		if err == nil {
			printRepair(stdout, name, rep)
			return 0
		}
	}
	fmt.Fprintf(stderr, "embedd repair: %v\n", err)
	return 1
}

// dataDirFlagSet is the flags of a command whose only flag is --data-dir;
// usage is its help, before the flags.
func dataDirFlagSet(name string, stderr io.Writer, usage string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := dataDirFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage+"\n\nflags:")
		fs.PrintDefaults()
	}
	return fs, dataDir
}

func printRepair(w io.Writer, name string, rep index.RepairReport) {
	if len(rep.Damage) == 0 {
		fmt.Fprintf(w, "%s: no damage in the write-ahead log; %d batches replayed, at seq %d\n", name, rep.Replayed, rep.Seq)
		return
	}
	for _, d := range rep.Damage {
		next := "the rest of the file is lost"
		if d.Resume != 0 {
			next = fmt.Sprintf("resumed at offset %d", d.Resume)
		}
		fmt.Fprintf(w, "damage: %s at offset %d: %s; %s\n", d.File, d.Offset, d.Reason, next)
	}
	for _, b := range rep.Backups {
		fmt.Fprintf(w, "kept a copy: %s\n", b)
	}
	fmt.Fprintf(w, "%s: repaired: %d batches replayed, %d lost to the damage, at seq %d\n", name, rep.Replayed, rep.Lost, rep.Seq)
}
