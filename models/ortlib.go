package models

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ORTVersion is the ONNX Runtime release embedd is built and tested against;
// scripts/setup.sh installs it into .cache/ort/<ORTVersion>/.
const ORTVersion = "1.29.0"

// ortLibName is the file name of ONNX Runtime's shared library on Linux.
const ortLibName = "libonnxruntime.so.1"

// FindORTLibrary returns the path of the ONNX Runtime shared library to load.
// In order it takes: explicit (when not empty), the ORT_LIB environment
// variable, .cache/ort/<ORTVersion>/ in the working directory or any parent of
// it (a checkout where scripts/setup.sh ran), and the executable's own folder.
// It returns an error naming every place it looked when none holds the file.
func FindORTLibrary(explicit string) (string, error) {
	if explicit != "" {
		return checkFile(explicit, "ort_lib")
	}
	if env := os.Getenv("ORT_LIB"); env != "" {
		return checkFile(env, "ORT_LIB")
	}
	var tried []string
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, ".cache", "ort", ORTVersion, ortLibName)
			tried = append(tried, p)
			if isFile(p) {
				return p, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), ortLibName)
		tried = append(tried, p)
		if isFile(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("embedd/models: ONNX Runtime library %s not found (looked in %v): run scripts/setup.sh or set ORT_LIB to its path: %w",
		ortLibName, tried, ErrORTLibrary)
}

// ErrORTLibrary is wrapped by errors about a missing or unloadable ONNX
// Runtime library.
var ErrORTLibrary = errors.New("onnx runtime library unavailable")

func checkFile(path, from string) (string, error) {
	if !isFile(path) {
		return "", fmt.Errorf("embedd/models: ONNX Runtime library %q (from %s) does not exist or is not a file: %w", path, from, ErrORTLibrary)
	}
	return path, nil
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
