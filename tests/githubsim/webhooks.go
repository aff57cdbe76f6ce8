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
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Delivery is one webhook delivery as the simulator's log keeps it.
type Delivery struct {
	ID         string    `json:"id"`
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

// webhooks sends deliveries in order on one goroutine, applying the
// webhook faults, and keeps a bounded log.
type webhooks struct {
	url, secret string
	client      *http.Client
	faults      *faults
	queue       chan *Delivery
	mu          sync.Mutex
	log         []*Delivery
	sent        int
	failed      int
	dropped     int
	held        *Delivery // a delivery held back to be reordered
	pending     int       // deliveries enqueued and not yet processed
}

const maxDeliveryLog = 10000

func newWebhooks(url, secret string, f *faults) *webhooks {
	return &webhooks{url: url, secret: secret, faults: f, queue: make(chan *Delivery, 100000),
		client: &http.Client{Timeout: 10 * time.Second}}
}

// appTarget is the app-wide webhook, if one is set.
func (w *webhooks) appTarget() (hookTarget, bool) {
	return hookTarget{url: w.url, secret: w.secret, hookID: 1, targetType: "integration", targetID: AppID}, w.url != ""
}

// enqueue schedules a delivery; it never blocks the caller's request.
func (w *webhooks) enqueue(t hookTarget, event, action, repo string, jobID int64, payload any) {
	b, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("githubsim: encode %s payload: %v", event, err))
	}
	d := &Delivery{ID: newDeliveryID(), Event: event, Action: action, Repo: repo, JobID: jobID, URL: t.url,
		HookID: t.hookID, payload: b, target: t}
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
		case <-time.After(200 * time.Millisecond):
			// A held delivery goes out when nothing follows it soon.
			w.mu.Lock()
			held := w.held
			w.held = nil
			w.mu.Unlock()
			if held != nil {
				w.send(ctx, held)
			}
		}
	}
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
	if w.faults.roll(wf.ReorderRate) {
		w.mu.Lock()
		if w.held == nil {
			w.held = d
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
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
	resp, err := w.client.Do(req)
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
	d.StatusCode, d.Error, d.SentAt = status, errText, time.Now().UTC()
	switch {
	case d.Dropped:
		w.dropped++
	case status >= 200 && status < 300:
		w.sent++
	default:
		w.failed++
	}
	if len(w.log) >= maxDeliveryLog {
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

// redeliver sends the delivery with id again, with a new delivery id, as
// GitHub's redelivery does.
func (w *webhooks) redeliver(id string) bool {
	w.mu.Lock()
	var found *Delivery
	for _, d := range w.log {
		if d.ID == id {
			found = d
		}
	}
	w.mu.Unlock()
	if found == nil {
		return false
	}
	again := &Delivery{ID: newDeliveryID(), Event: found.Event, Action: found.Action, Repo: found.Repo, JobID: found.JobID,
		URL: found.URL, HookID: found.HookID, payload: found.payload, target: found.target}
	w.queue1(again)
	return true
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
