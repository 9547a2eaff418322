module github.com/embedd/embedd

go 1.26.0

require (
	github.com/yalue/onnxruntime_go v1.36.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
