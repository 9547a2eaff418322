package models

/*
#include <signal.h>

// saved holds every signal's disposition, saved before a library that may
// install its own handlers is called.
static struct sigaction saved[NSIG];

static void embedd_save_handlers(void) {
	for (int i = 1; i < NSIG; i++) {
		sigaction(i, NULL, &saved[i]);
	}
}

// embedd_restore_handlers puts back every disposition that changed since
// the save and returns how many did.
static int embedd_restore_handlers(void) {
	int n = 0;
	for (int i = 1; i < NSIG; i++) {
		if (i == SIGKILL || i == SIGSTOP) {
			continue;
		}
		struct sigaction cur;
		if (sigaction(i, NULL, &cur) != 0) {
			continue;
		}
		if (cur.sa_handler != saved[i].sa_handler || cur.sa_flags != saved[i].sa_flags) {
			sigaction(i, &saved[i], NULL);
			n++;
		}
	}
	return n;
}
*/
import "C"

import "sync"

// sigMu serialises save/restore pairs: the saved table is process-wide.
var sigMu sync.Mutex

// keepGoSignalHandlers runs f, which may load CUDA libraries, and then
// restores every signal disposition f changed. The CUDA execution provider
// installs handlers without SA_ONSTACK over Go's, after which a SIGINT or
// SIGTERM crashes the process instead of reaching signal.Notify
// (onnxruntime_go issue #140). It returns how many handlers it restored.
func keepGoSignalHandlers(f func() error) (restored int, err error) {
	sigMu.Lock()
	defer sigMu.Unlock()
	C.embedd_save_handlers()
	err = f()
	return int(C.embedd_restore_handlers()), err
}
