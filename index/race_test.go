//go:build race

package index

// raceEnabled: the race detector's shadow memory makes heap sizes
// meaningless for RSS checks.
const raceEnabled = true
