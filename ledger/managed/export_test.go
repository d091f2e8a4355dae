package managed

// SetInfoCompressAbove makes ledger lists above n bytes of JSON compressed
// and returns a function restoring the threshold.
func SetInfoCompressAbove(n int) (restore func()) {
	old := infoCompressAbove
	infoCompressAbove = n
	return func() { infoCompressAbove = old }
}
