//go:build race

package offload

// raceEnabled: the race detector makes sync.Pool drop items on purpose.
const raceEnabled = true
