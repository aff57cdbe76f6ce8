package workflows

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// PoolCarried is everything a pool carries into its next run. Its size is
// bounded whatever the pool's load (boundCarried keeps it under
// maxCarriedBytes): the runners are bounded by maxRunners and packed; the
// queue is a page of the oldest jobs and a count of the rest; the dedupe
// marks, the lists of lost, retried and unmatched jobs and the usage have
// limits of their own.
type PoolCarried struct {
	Configured   bool       `json:"configured"`
	Config       PoolConfig `json:"config"`
	ConfiguredBy string     `json:"configuredBy,omitempty"`
	// ListPrice is the server's price of a runner-hour of the pool, as at
	// its last configure; hourlyPrice, when set, comes first.
	ListPrice float64 `json:"listPrice,omitempty"`
	Draining  bool    `json:"draining,omitempty"`
	// Failures counts the runners lost in a row; the pool starts none
	// before BackoffUntil, and is degraded (with LastError) until one
	// comes online.
	Failures     int       `json:"failures,omitempty"`
	BackoffUntil time.Time `json:"backoffUntil,omitzero"`
	Degraded     bool      `json:"degraded,omitempty"`
	LastError    string    `json:"lastError,omitempty"`
	// AgentOffline: its agent missed its heartbeats; AgentUnchecked: the
	// pool has not learnt yet whether its agent is online.
	AgentOffline   bool `json:"agentOffline,omitempty"`
	AgentUnchecked bool `json:"agentUnchecked,omitempty"`
	// Prefix (from the first run id) and Seq name the runners, uniquely
	// on GitHub.
	Prefix string `json:"prefix"`
	Seq    int    `json:"seq"`
	// Runners are the pool's runners, packed.
	Runners RunnerTable `json:"runners"`
	// Queue is the page of the oldest queued jobs, oldest first; QueueRest
	// counts the queued jobs after them, known by number only.
	Queue     []QueuedJob `json:"queue,omitempty"`
	QueueRest int         `json:"queueRest,omitempty"`
	// Marks remember, for the most recent jobs, which of their events
	// were seen: events are deduplicated, and late ones dropped.
	Marks JobMarks `json:"marks"`
	// Orphans are jobs seen start on a runner of the pool whose runner
	// has ended before their end was seen: their end is still counted.
	Orphans []RunningJob `json:"orphans,omitempty"`
	// Lost are the jobs whose runner was lost while it ran them, until
	// GitHub says how they ended; Retried the jobs run again (each once);
	// Reruns the runs again asked for and not yet confirmed.
	Lost    []RunningJob `json:"lost,omitempty"`
	Retried []int64      `json:"retried,omitempty"`
	Reruns  []int64      `json:"reruns,omitempty"`
	// Recheck are jobs of runners lost mid-job: the next reconciliation
	// queues again those GitHub lists as queued.
	Recheck []int64 `json:"recheck,omitempty"`
	// Unmatched are the repository's queued jobs no pool fits, when this
	// pool keeps them (Routes.Keeper), oldest first; UnmatchedTotal counts
	// every one it was given.
	Unmatched      []QueuedJob `json:"unmatched,omitempty"`
	UnmatchedTotal int         `json:"unmatchedTotal,omitempty"`
	// Forwards are jobs to hand on to other pools of the repository, not
	// yet delivered.
	Forwards []Forward `json:"forwards,omitempty"`
	Routes   Routes    `json:"routes"`
	// LastReconcile is when the pool last looked at GitHub; ReconcileNow
	// asks for a look at once, and RedeliverSince has it ask GitHub to
	// redeliver the webhooks that failed since then.
	LastReconcile  time.Time  `json:"lastReconcile,omitzero"`
	ReconcileNow   bool       `json:"reconcileNow,omitempty"`
	RedeliverSince *time.Time `json:"redeliverSince,omitempty"`
	// LastLook is up to when the pool's watch has looked for runner
	// workflows that ended unseen.
	LastLook time.Time `json:"lastLook,omitzero"`
	JobsDone int       `json:"jobsDone"`
	// Usage are the pool's usage ledgers, one per agent that served it
	// (usage.go has their limits); UsageTotals since it was configured.
	Usage       []UsageLedger `json:"usage,omitempty"`
	UsageTotals UsageTotals   `json:"usageTotals,omitzero"`
	// Calls numbers the activities the pool runs on agents' queues.
	Calls int `json:"calls,omitempty"`
}

// Forward is a job to hand on to another pool of the repository.
type Forward struct {
	Pool      string    `json:"pool"`
	Job       QueuedJob `json:"job"`
	Unmatched bool      `json:"unmatched,omitempty"`
}

// Limits of what a pool carries.
const (
	// queuePage bounds the queued jobs a pool keeps in full.
	queuePage = 256
	// maxMarks bounds the jobs whose events a pool remembers (up to
	// marksSlack more between two forgettings).
	maxMarks   = 16384
	marksSlack = 1024
	// maxPoolUnmatched bounds the unmatched jobs a pool keeps.
	maxPoolUnmatched = MaxUnmatched
	// maxPoolLost bounds the lost, retried and orphaned jobs.
	maxPoolLost = 500
	// maxPoolLedgers bounds the usage ledgers: the agent of now and the
	// last ones before it.
	maxPoolLedgers = 4
	// maxCarriedBytes bounds the pool's carried state, as JSON.
	maxCarriedBytes = 256 << 10
	// maxForwards bounds the jobs waiting to be handed on.
	maxForwards = 2000
)

// PoolRunner is a pool's record of one of its runners.
type PoolRunner struct {
	// Seq numbers the runner in its pool; Name is set instead for a
	// runner named otherwise (one a repository's workflow handed over).
	Seq       int
	Name      string
	Agent     string
	State     RunnerState
	CreatedAt time.Time
	// Since is when the runner's time in its state was last counted.
	Since time.Time
	// IdleSince is when it last became idle (zero unless idle).
	IdleSince time.Time
	RunnerID  int64
	JobID     int64
	// Started: its workflow was started. Online: it was seen online (or
	// busy). DeleteWanted: the pool wants it gone; DeleteSent: its
	// workflow was told. Legacy: a runner workflow from before pools,
	// which reports nothing: its end is found by a look. GaveUp: it
	// failed (its bootstrap timed out): it no longer counts, and its end
	// changes nothing more.
	Started, Online, DeleteWanted, DeleteSent, Legacy, GaveUp bool
}

const (
	flagStarted = 1 << (3 + iota)
	flagOnline
	flagDeleteWanted
	flagDeleteSent
	flagLegacy
	flagGaveUp
	flagIdleSince
)

var runnerStateCodes = []RunnerState{RunnerProvisioning, RunnerIdle, RunnerBusy, RunnerDeleting}

// RunnerTable is a pool's runners, in the order they were made. It is
// carried packed: a pool of 5,000 runners carries about 100 KB.
type RunnerTable []PoolRunner

type packedRunners struct {
	Agents []string `json:"agents,omitempty"`
	Epoch  int64    `json:"epoch,omitempty"`
	Packed string   `json:"packed,omitempty"`
}

// MarshalJSON packs the table: per runner, varints of its fields, times
// in milliseconds relative to its creation (and that to the epoch).
func (t RunnerTable) MarshalJSON() ([]byte, error) {
	var p packedRunners
	if len(t) == 0 {
		return json.Marshal(p)
	}
	p.Epoch = t[0].CreatedAt.UnixMilli()
	var b []byte
	for _, r := range t {
		code := slices.Index(runnerStateCodes, r.State)
		if code < 0 {
			return nil, fmt.Errorf("runner %d: unknown state %q", r.Seq, r.State)
		}
		flags := uint64(code)
		for _, f := range []struct {
			set  bool
			flag uint64
		}{{r.Started, flagStarted}, {r.Online, flagOnline}, {r.DeleteWanted, flagDeleteWanted}, {r.DeleteSent, flagDeleteSent},
			{r.Legacy, flagLegacy}, {r.GaveUp, flagGaveUp}, {!r.IdleSince.IsZero(), flagIdleSince}} {
			if f.set {
				flags |= f.flag
			}
		}
		b = binary.AppendUvarint(b, flags)
		b = binary.AppendUvarint(b, uint64(r.Seq))
		if r.Seq == 0 {
			b = binary.AppendUvarint(b, uint64(len(r.Name)))
			b = append(b, r.Name...)
		}
		ai := slices.Index(p.Agents, r.Agent)
		if ai < 0 {
			p.Agents = append(p.Agents, r.Agent)
			ai = len(p.Agents) - 1
		}
		b = binary.AppendUvarint(b, uint64(ai))
		created := r.CreatedAt.UnixMilli()
		b = binary.AppendVarint(b, created-p.Epoch)
		b = binary.AppendVarint(b, r.Since.UnixMilli()-created)
		if !r.IdleSince.IsZero() {
			b = binary.AppendVarint(b, r.IdleSince.UnixMilli()-created)
		}
		b = binary.AppendUvarint(b, uint64(r.RunnerID))
		b = binary.AppendUvarint(b, uint64(r.JobID))
	}
	p.Packed = base64.RawStdEncoding.EncodeToString(b)
	return json.Marshal(p)
}

// errPacked is a packed table that does not read.
var errPacked = errors.New("malformed packed runner table")

// UnmarshalJSON reads what MarshalJSON wrote.
func (t *RunnerTable) UnmarshalJSON(data []byte) error {
	var p packedRunners
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	b, err := base64.RawStdEncoding.DecodeString(p.Packed)
	if err != nil {
		return fmt.Errorf("runner table: %w", err)
	}
	out := RunnerTable{}
	d := decoder{b: b}
	for len(d.b) > 0 && d.err == nil {
		var r PoolRunner
		flags := d.uvarint()
		if int(flags&7) >= len(runnerStateCodes) {
			return errPacked
		}
		r.State = runnerStateCodes[flags&7]
		r.Started, r.Online = flags&flagStarted != 0, flags&flagOnline != 0
		r.DeleteWanted, r.DeleteSent = flags&flagDeleteWanted != 0, flags&flagDeleteSent != 0
		r.Legacy, r.GaveUp = flags&flagLegacy != 0, flags&flagGaveUp != 0
		r.Seq = int(d.uvarint())
		if r.Seq == 0 {
			r.Name = d.bytes(int(d.uvarint()))
		}
		ai := int(d.uvarint())
		if ai >= len(p.Agents) {
			return errPacked
		}
		r.Agent = p.Agents[ai]
		created := p.Epoch + d.varint()
		r.CreatedAt = time.UnixMilli(created).UTC()
		r.Since = time.UnixMilli(created + d.varint()).UTC()
		if flags&flagIdleSince != 0 {
			r.IdleSince = time.UnixMilli(created + d.varint()).UTC()
		}
		r.RunnerID = int64(d.uvarint())
		r.JobID = int64(d.uvarint())
		out = append(out, r)
	}
	if d.err != nil {
		return d.err
	}
	*t = out
	return nil
}

// decoder reads varints from b; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errPacked
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errPacked
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) string {
	if d.err != nil {
		return ""
	}
	if n < 0 || n > len(d.b) {
		d.err = errPacked
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// Marks of a job's events.
const (
	markQueued uint8 = 1 << iota
	markStarted
	markEnded
	markLost
	// markCounted: the job counts in the pool's queue (page or rest).
	markCounted
)

// JobMarks remember which events of the most recent jobs were seen, at
// most maxMarks jobs, the oldest forgotten first.
type JobMarks struct {
	order []int64
	marks map[int64]uint8
}

func (m *JobMarks) get(id int64) uint8 { return m.marks[id] }

func (m *JobMarks) has(id int64, mark uint8) bool { return m.marks[id]&mark != 0 }

// set adds marks to a job, remembering it if new.
func (m *JobMarks) set(id int64, mark uint8) {
	if m.marks == nil {
		m.marks = map[int64]uint8{}
	}
	old, ok := m.marks[id]
	if !ok {
		m.order = append(m.order, id)
		if len(m.order) > maxMarks+marksSlack {
			// Forgotten in chunks: one at a time would move the whole
			// order for every new job.
			m.forgetOldest(len(m.order) - maxMarks)
		}
	}
	m.marks[id] = old | mark
}

// clear removes marks from a job.
func (m *JobMarks) clear(id int64, mark uint8) {
	if v, ok := m.marks[id]; ok {
		m.marks[id] = v &^ mark
	}
}

func (m *JobMarks) forgetOldest(n int) {
	for _, id := range m.order[:n] {
		delete(m.marks, id)
	}
	m.order = slices.Delete(m.order, 0, n)
}

func (m *JobMarks) len() int { return len(m.order) }

// MarshalJSON packs the marks: per job, the zig-zag varint of its id less
// the one before, and its marks.
func (m JobMarks) MarshalJSON() ([]byte, error) {
	var b []byte
	prev := int64(0)
	for _, id := range m.order {
		b = binary.AppendVarint(b, id-prev)
		b = append(b, m.marks[id])
		prev = id
	}
	return json.Marshal(base64.RawStdEncoding.EncodeToString(b))
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (m *JobMarks) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("job marks: %w", err)
	}
	out := JobMarks{marks: map[int64]uint8{}}
	d := decoder{b: b}
	prev := int64(0)
	for len(d.b) > 0 && d.err == nil {
		id := prev + d.varint()
		mark := d.bytes(1)
		if d.err != nil {
			break
		}
		if _, dup := out.marks[id]; !dup {
			out.order = append(out.order, id)
		}
		out.marks[id] = mark[0]
		prev = id
	}
	if d.err != nil {
		return d.err
	}
	*m = out
	return nil
}
