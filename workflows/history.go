package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// boundedHistory is the workflow.GetVersion change that bounds every run's
// history: a wait that ends early cancels its timer (none is left to fire
// later and cost a workflow task), and a run continues as new before its
// history grows long. Every run inside the support window (release v6 on,
// docs/architecture.md) has it.
const boundedHistory = "bounded-history"

// supported records change at version 1, the only one the code still
// has: the runs of releases older than the support window, which did not
// have it, fail their replay here with a clear error rather than run code
// that is gone.
func supported(ctx workflow.Context, change string) {
	workflow.GetVersion(ctx, change, 1, 1)
}

// historyLimit is the history length at which a run continues as new. The
// server suggests it at 4,096 events by default (and, for a runner, no run
// of the old code heeded it); this keeps a margin for what the last
// workflow task adds.
const historyLimit = 3000

// continueAsNewDue reports whether the run should continue as new now: the
// server suggests it, or its history has reached historyLimit.
func continueAsNewDue(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= historyLimit
}

// awaitTimeout waits until cond holds or d has passed, and reports whether
// cond held. A wait that cond ends cancels its timer (and one that holds
// at once starts none).
func awaitTimeout(ctx workflow.Context, d time.Duration, cond func() bool) (bool, error) {
	if cond() {
		return true, nil
	}
	timerCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	timer := workflow.NewTimer(timerCtx, d)
	if err := workflow.Await(ctx, func() bool { return timer.IsReady() || cond() }); err != nil {
		return false, err
	}
	return cond(), nil
}

// alarm is a timer that outlives one wait. A loop that waits, turn after
// turn, for the same time (its next reconciliation, say) keeps one timer,
// instead of starting one each turn and cancelling it when a signal wakes
// the loop first: two history events and a billable action a turn.
type alarm struct {
	at     time.Time
	timer  workflow.Future
	cancel workflow.CancelFunc
}

// await waits until cond holds or at has come (zero: no time limit). A
// timer set for a later time is replaced; one set for an earlier time is
// kept, and only wakes the loop once more.
func (a *alarm) await(ctx workflow.Context, at time.Time, cond func() bool) error {
	if a.timer != nil && a.timer.IsReady() {
		a.timer = nil
	}
	if cond() {
		return nil
	}
	if !at.IsZero() {
		now := workflow.Now(ctx)
		if !at.After(now) {
			return nil
		}
		if a.timer == nil || at.Before(a.at) {
			if a.timer != nil {
				a.cancel()
			}
			timerCtx, cancel := workflow.WithCancel(ctx)
			a.timer, a.cancel, a.at = workflow.NewTimer(timerCtx, at.Sub(now)), cancel, at
		}
	}
	return workflow.Await(ctx, func() bool { return cond() || (a.timer != nil && a.timer.IsReady()) })
}
