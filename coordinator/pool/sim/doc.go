// Package sim replays a day of build arrivals through the real pool.Scaler
// with a fake clock, a simulated provider (instances that boot for a while
// before their agent joins) and a simulated coordinator (a FIFO queue), to
// show what a scaler setting costs in instance-hours and in queue wait
// before it runs against real money: `monkeyci pool simulate --trace FILE`
// and the bench figure in bench/pool_test.go.
//
// Everything is simulated time: a day takes milliseconds and a run gives
// the same figures every time.
//
// testdata/day.csv is the shipped trace, a working day of a team of about
// 40 engineers; it is made by gentrace with a fixed seed and is not edited
// by hand.
//
//go:generate sh -c "go run ./gentrace > testdata/day.csv"
package sim
