package githubsim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Delivery is one webhook delivery as the simulator's log keeps it: one
// attempt to send an event to one hook. ID is the event's GUID
// (X-GitHub-Delivery), shared by every hook's delivery of the event and by
// its redeliveries; Attempt is the attempt's own number, the delivery id
// of GitHub's hook deliveries API.
type Delivery struct {
	ID         string    `json:"id"`
	Attempt    int64     `json:"attempt"`
	Redelivery bool      `json:"redelivery,omitempty"`
	RepoID     int64     `json:"repoId,omitempty"`
	Duration   float64   `json:"duration"`
	Event      string    `json:"event"`
	Action     string    `json:"action,omitempty"`
	JobID      int64     `json:"jobId,omitempty"`
	Repo       string    `json:"repo,omitempty"`
	StatusCode int       `json:"statusCode"`
	Error      string    `json:"error,omitempty"`
	Dropped    bool      `json:"dropped,omitempty"`
	Duplicate  bool      `json:"duplicate,omitempty"`
	SentAt     time.Time `json:"sentAt"`
	URL        string    `json:"url"`
	HookID     int64     `json:"hookId"`
	payload    []byte
	target     hookTarget
}

// hookTarget is where a delivery goes and how it is signed and labelled.
type hookTarget struct {
	url, secret string
	hookID      int64
	// targetType is "integration" for the app's webhook, "repository" for
	// a repository's.
	targetType string
	targetID   int64
	form       bool
}

// webhooks sends deliveries from one queue on several goroutines (each
// runs run), applying the webhook faults, and keeps a bounded log.
type webhooks struct {
	url, secret string
	client      *http.Client
	faults      *faults
	logger      *slog.Logger
	queue       chan *Delivery
	mu          sync.Mutex
	log         []*Delivery
	sent        int
	failed      int
	dropped     int
	held        *Delivery // a delivery held back to be reordered
	pending     int       // deliveries enqueued and not yet processed
	attempts    int64     // numbers the attempts
	logSize     int       // attempts kept in log, the oldest dropped
}

// DefaultDeliveryLog is how many attempts the log keeps by default.
const DefaultDeliveryLog = 10000

func newWebhooks(url, secret string, concurrency, logSize int, f *faults, log *slog.Logger) *webhooks {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = concurrency // one kept-alive connection per sender
	return &webhooks{url: url, secret: secret, faults: f, queue: make(chan *Delivery, 100000), logSize: logSize,
		client: &http.Client{Timeout: 10 * time.Second, Transport: tr}, logger: log}
}

// appTarget is the app-wide webhook, if one is set.
func (w *webhooks) appTarget() (hookTarget, bool) {
	return hookTarget{url: w.url, secret: w.secret, hookID: 1, targetType: "integration", targetID: AppID}, w.url != ""
}

// hookEvent is one event, delivered to each hook that wants it under one
// GUID.
type hookEvent struct {
	guid, event, action, repo string
	repoID, jobID             int64
	payload                   any
}

func newHookEvent(event, action, repo string, repoID, jobID int64, payload any) hookEvent {
	return hookEvent{guid: newDeliveryID(), event: event, action: action, repo: repo, repoID: repoID, jobID: jobID, payload: payload}
}

// enqueue schedules the delivery of ev to t; it never blocks the caller's
// request.
func (w *webhooks) enqueue(t hookTarget, ev hookEvent) {
	b, err := json.Marshal(ev.payload)
	if err != nil {
		panic(fmt.Sprintf("githubsim: encode %s payload: %v", ev.event, err))
	}
	d := &Delivery{ID: ev.guid, Event: ev.event, Action: ev.action, Repo: ev.repo, RepoID: ev.repoID, JobID: ev.jobID,
		URL: t.url, HookID: t.hookID, payload: b, target: t}
	w.queue1(d)
}

// queue1 puts d on the delivery queue.
func (w *webhooks) queue1(d *Delivery) {
	w.mu.Lock()
	w.pending++
	w.mu.Unlock()
	select {
	case w.queue <- d:
	default:
		w.mu.Lock()
		w.pending--
		w.mu.Unlock()
		w.record(d, 0, "delivery queue full")
	}
}

func newDeliveryID() string {
	b := randomToken("")
	// GitHub's delivery ids are GUIDs.
	return b[0:8] + "-" + b[8:12] + "-" + b[12:16] + "-" + b[16:20] + "-" + b[20:32]
}

func (w *webhooks) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-w.queue:
			w.process(ctx, d)
			w.mu.Lock()
			w.pending--
			w.mu.Unlock()
		}
	}
}

// holdBack keeps d to send after the next delivery (a reordering fault),
// or after 200 ms when nothing follows it; false when one is held already.
func (w *webhooks) holdBack(ctx context.Context, d *Delivery) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held != nil {
		return false
	}
	w.held = d
	time.AfterFunc(200*time.Millisecond, func() {
		w.mu.Lock()
		held := w.held == d
		if held {
			w.held = nil
		}
		w.mu.Unlock()
		if held && ctx.Err() == nil {
			w.send(ctx, d)
		}
	})
	return true
}

func (w *webhooks) process(ctx context.Context, d *Delivery) {
	wf := w.faults.webhook()
	if wf.DelayMs > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(wf.DelayMs) * time.Millisecond):
		}
	}
	if w.faults.roll(wf.DropRate) {
		d.Dropped = true
		w.record(d, 0, "")
		return
	}
	if w.faults.roll(wf.ReorderRate) && w.holdBack(ctx, d) {
		return
	}
	w.send(ctx, d)
	w.mu.Lock()
	held := w.held
	w.held = nil
	w.mu.Unlock()
	if held != nil {
		w.send(ctx, held)
	}
	if w.faults.roll(wf.DuplicateRate) {
		dup := *d
		dup.Duplicate = true
		w.send(ctx, &dup)
	}
}

func (w *webhooks) send(ctx context.Context, d *Delivery) {
	body, contentType := d.payload, "application/json"
	if d.target.form {
		body, contentType = []byte("payload="+url.QueryEscape(string(d.payload))), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		w.record(d, 0, err.Error())
		return
	}
	mac := hmac.New(sha256.New, []byte(d.target.secret))
	mac.Write(body)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "GitHub-Hookshot/githubsim")
	req.Header.Set("X-GitHub-Event", d.Event)
	req.Header.Set("X-GitHub-Delivery", d.ID)
	req.Header.Set("X-GitHub-Hook-ID", strconv.FormatInt(d.target.hookID, 10))
	req.Header.Set("X-GitHub-Hook-Installation-Target-Type", d.target.targetType)
	req.Header.Set("X-GitHub-Hook-Installation-Target-ID", strconv.FormatInt(d.target.targetID, 10))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	began := time.Now()
	resp, err := w.client.Do(req)
	d.Duration = time.Since(began).Seconds()
	if err != nil {
		w.record(d, 0, err.Error())
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	w.record(d, resp.StatusCode, "")
}

func (w *webhooks) record(d *Delivery, status int, errText string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.attempts++
	d.Attempt, d.StatusCode, d.Error, d.SentAt = w.attempts, status, errText, time.Now().UTC()
	switch {
	case d.Dropped:
		w.dropped++
		w.logger.Debug("Webhook dropped (fault)", "event", d.Event, "action", d.Action, "job", d.JobID, "delivery", d.ID)
	case status >= 200 && status < 300:
		w.sent++
		w.logger.Debug("Webhook delivered", "event", d.Event, "action", d.Action, "job", d.JobID, "delivery", d.ID, "status", status)
	default:
		w.failed++
		w.logger.Warn("Webhook delivery failed; redeliver it through the deliveries API", "event", d.Event,
			"action", d.Action, "job", d.JobID, "delivery", d.ID, "status", status, "error", errText)
	}
	if len(w.log) >= w.logSize {
		w.log = w.log[1:]
	}
	w.log = append(w.log, d)
}

// idle reports whether every enqueued delivery has been processed.
func (w *webhooks) idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pending == 0 && w.held == nil
}

// redeliver sends a delivery again to its hook, as GitHub's redelivery
// does: the same event GUID, flagged as a redelivery. id is its attempt
// number, or its GUID (the latest attempt with it).
func (w *webhooks) redeliver(id string) bool {
	w.mu.Lock()
	var found *Delivery
	for _, d := range w.log {
		if (d.ID == id || strconv.FormatInt(d.Attempt, 10) == id) && !d.Dropped {
			found = d
		}
	}
	w.mu.Unlock()
	if found == nil {
		return false
	}
	again := &Delivery{ID: found.ID, Redelivery: true, Event: found.Event, Action: found.Action, Repo: found.Repo,
		RepoID: found.RepoID, JobID: found.JobID, URL: found.URL, HookID: found.HookID, payload: found.payload, target: found.target}
	w.queue1(again)
	return true
}

// attemptsOf lists the attempts GitHub's deliveries API shows for a hook,
// newest first: every delivery sent or tried, not those a fault dropped
// or duplicated on the way (GitHub never knew of them).
func (w *webhooks) attemptsOf(targetType string, hookID int64) []*Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*Delivery
	for i := len(w.log) - 1; i >= 0; i-- {
		d := w.log[i]
		if d.target.targetType == targetType && d.target.hookID == hookID && !d.Dropped && !d.Duplicate {
			c := *d
			out = append(out, &c)
		}
	}
	return out
}

func (w *webhooks) deliveries() []Delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Delivery, len(w.log))
	for i, d := range w.log {
		out[i] = *d
	}
	return out
}

func (w *webhooks) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.log, w.sent, w.failed, w.dropped, w.held = nil, 0, 0, 0, nil
}
