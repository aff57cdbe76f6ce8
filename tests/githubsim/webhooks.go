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
	payload    []byte
	secret     string
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
}

const maxDeliveryLog = 10000

func newWebhooks(url, secret string, f *faults) *webhooks {
	return &webhooks{url: url, secret: secret, faults: f, queue: make(chan *Delivery, 100000),
		client: &http.Client{Timeout: 10 * time.Second}}
}

// enqueue schedules a delivery to url (the app-wide webhook when empty);
// it never blocks the caller's request.
func (w *webhooks) enqueue(url, secret, event, action, repo string, jobID int64, payload any) {
	if url == "" {
		url, secret = w.url, w.secret
	}
	if url == "" {
		return
	}
	b, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("githubsim: encode %s payload: %v", event, err))
	}
	d := &Delivery{ID: newDeliveryID(), Event: event, Action: action, Repo: repo, JobID: jobID, URL: url,
		payload: b, secret: secret}
	select {
	case w.queue <- d:
	default:
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.payload))
	if err != nil {
		w.record(d, 0, err.Error())
		return
	}
	mac := hmac.New(sha256.New, []byte(d.secret))
	mac.Write(d.payload)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/githubsim")
	req.Header.Set("X-GitHub-Event", d.Event)
	req.Header.Set("X-GitHub-Delivery", d.ID)
	req.Header.Set("X-GitHub-Hook-ID", "1")
	req.Header.Set("X-GitHub-Hook-Installation-Target-Type", "integration")
	req.Header.Set("X-GitHub-Hook-Installation-Target-ID", strconv.Itoa(AppID))
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
	return len(w.queue) == 0 && w.held == nil
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
