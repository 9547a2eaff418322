//go:build !amd64

package flat

func asmKernels() []kernel { return nil }
