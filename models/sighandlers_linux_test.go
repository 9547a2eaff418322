package models

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
	"unsafe"
)

// kernelSigaction is the kernel's struct sigaction on linux/amd64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

func currentHandler(t *testing.T, sig syscall.Signal) kernelSigaction {
	t.Helper()
	var old kernelSigaction
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		t.Fatalf("rt_sigaction: %v", e)
	}
	return old
}

func TestKeepGoSignalHandlers(t *testing.T) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR2)
	defer signal.Reset(syscall.SIGUSR2)
	goHandler := currentHandler(t, syscall.SIGUSR2)
	const saOnStack = 0x08000000
	if goHandler.handler <= 1 || goHandler.flags&saOnStack == 0 {
		t.Fatalf("Go's SIGUSR2 handler not installed as expected: %+v", goHandler)
	}
	// Stand in for the CUDA provider: something replaces the handler.
	n, err := keepGoSignalHandlers(func() error {
		signal.Ignore(syscall.SIGUSR2)
		if h := currentHandler(t, syscall.SIGUSR2); h.handler != 1 {
			t.Fatalf("SIGUSR2 not replaced inside f: %+v", h)
		}
		return nil
	})
	if err != nil || n < 1 {
		t.Fatalf("restored %d handlers, err %v; want at least SIGUSR2's", n, err)
	}
	if got := currentHandler(t, syscall.SIGUSR2); got.handler != goHandler.handler || got.flags != goHandler.flags {
		t.Errorf("after restore: %+v, want Go's %+v", got, goHandler)
	}
	if n, _ := keepGoSignalHandlers(func() error { return nil }); n != 0 {
		t.Errorf("nothing changed, yet %d handlers restored", n)
	}
}
