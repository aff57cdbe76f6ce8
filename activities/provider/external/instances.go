package external

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Sessions serves what an instance of a GARM provider asks its
// controller for, on the agent's instance listener (--instance-listen):
// its JIT config files (or registration token), service name, unit file
// and certificate bundle under {metadata-url}, and its status under
// {callback-url}, both as GARM serves them. Each instance has its own
// bearer token, random, kept only as a hash, and valid until the instance
// reports idle or failed, or its session ends (the runner is deleted, or
// the TTL passes).
type Sessions struct {
	// BaseURL is where instances reach the listener, e.g.
	// http://10.0.0.5:9470.
	BaseURL string
	// TTL bounds a session that never reports idle (default 1h).
	TTL time.Duration
	Log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	byHash map[[32]byte]*session
	byName map[string][32]byte
}

type session struct {
	runner, repository string
	// files are the JIT config's files by name (".runner"...), decoded.
	files    map[string][]byte
	regToken string
	expires  time.Time
}

// Metadata and callback paths, as GARM serves them.
const (
	metadataPath = "/api/v1/metadata"
	callbackPath = "/api/v1/callbacks"
)

// Instance inputs the runner's variables carry.
const (
	envJITConfig = "ACTIONS_RUNNER_INPUT_JITCONFIG"
	envToken     = "ACTIONS_RUNNER_INPUT_TOKEN"
)

// Open starts the session of runner's instance with the runner's
// variables (its JIT config, or registration token), and returns the
// instance's token and the URLs the bootstrap names.
func (s *Sessions) Open(runner, repository string, env map[string]string) (token, metadataURL, callbackURL string, err error) {
	sess := &session{runner: runner, repository: repository, regToken: env[envToken], expires: s.clock().Add(s.ttl())}
	if jit := env[envJITConfig]; jit != "" {
		if sess.files, err = jitFiles(jit); err != nil {
			return "", "", "", err
		}
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", "", err
	}
	token = "garoi_" + base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byHash == nil {
		s.byHash, s.byName = map[[32]byte]*session{}, map[string][32]byte{}
	}
	if old, ok := s.byName[runner]; ok {
		delete(s.byHash, old)
	}
	s.byHash[h], s.byName[runner] = sess, h
	base := strings.TrimSuffix(s.BaseURL, "/")
	return token, base + metadataPath, base + callbackPath, nil
}

// Close ends the session of runner's instance: its token opens nothing
// from now on.
func (s *Sessions) Close(runner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.byName[runner]; ok {
		delete(s.byHash, h)
		delete(s.byName, runner)
	}
}

func (s *Sessions) ttl() time.Duration {
	if s.TTL == 0 {
		return time.Hour
	}
	return s.TTL
}

func (s *Sessions) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

func (s *Sessions) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// jitFiles decodes an encoded_jit_config: base64 of a JSON object of file
// names to their base64 contents.
func jitFiles(encoded string) (map[string][]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("JIT config is not base64: %w", err)
	}
	var enc map[string]string
	if err := json.Unmarshal(raw, &enc); err != nil {
		return nil, fmt.Errorf("JIT config is not a JSON object of files: %w", err)
	}
	files := map[string][]byte{}
	for name, v := range enc {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("JIT config file %s is not base64: %w", name, err)
		}
		files[name] = b
	}
	return files, nil
}

// session returns the live session whose token r carries.
func (s *Sessions) session(r *http.Request) (*session, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return nil, false
	}
	h := sha256.Sum256([]byte(tok))
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byHash[h]
	if !ok || s.clock().After(sess.expires) {
		return nil, false
	}
	return sess, true
}

// ServeHTTP answers an instance.
func (s *Sessions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.session(r)
	if !ok {
		http.Error(w, `{"error":"Unauthorized","details":"missing, invalid or expired instance token"}`, http.StatusUnauthorized)
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(path, metadataPath+"/credentials/"):
		name := "." + strings.TrimPrefix(path, metadataPath+"/credentials/")
		data, ok := sess.files[name]
		if !ok {
			http.Error(w, `{"error":"Not Found","details":"no such JIT config file"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Disposition", "attachment; filename="+name)
		w.Header().Set("Content-Type", "octet-stream")
		_, _ = w.Write(data)
	case r.Method == http.MethodGet && path == metadataPath+"/runner-registration-token":
		s.mu.Lock()
		tok := sess.regToken
		sess.regToken = "" // once
		s.mu.Unlock()
		if tok == "" {
			http.Error(w, `{"error":"Not Found","details":"no registration token for this instance"}`, http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(tok))
	case r.Method == http.MethodGet && path == metadataPath+"/system/service-name":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("actions.runner." + strings.ReplaceAll(sess.repository, "/", "-") + "." + sess.runner))
	case r.Method == http.MethodGet && path == metadataPath+"/systemd/unit-file":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(unitFile(r.URL.Query().Get("runAsUser"))))
	case r.Method == http.MethodGet && path == metadataPath+"/system/cert-bundle":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"root_certificates":{}}`))
	case r.Method == http.MethodPost && path == callbackPath+"/status":
		var msg struct {
			Status  string `json:"status"`
			Message string `json:"message"`
			AgentID int64  `json:"agent_id"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&msg); err != nil {
			http.Error(w, `{"error":"Bad Request","details":"invalid status message"}`, http.StatusBadRequest)
			return
		}
		s.log().Info("Instance reported its status", "runner", sess.runner, "status", msg.Status,
			"message", truncate(msg.Message, 512))
		if msg.Status == "idle" || msg.Status == "failed" {
			// Its runner is configured (or will not be): it needs
			// nothing more, and its token opens nothing from now on.
			s.Close(sess.runner)
		}
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodPost && path == callbackPath+"/system-info":
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
		w.WriteHeader(http.StatusOK)
	default:
		http.Error(w, `{"error":"Not Found","details":"no such route"}`, http.StatusNotFound)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// unitFile is a systemd unit that runs the actions runner from
// /home/USER/actions-runner, as GARM's templates install it.
func unitFile(user string) string {
	if user == "" || strings.ContainsAny(user, "\n\r/ ") {
		user = "runner"
	}
	return `[Unit]
Description=GitHub Actions Runner (garo)
After=network.target

[Service]
ExecStart=/home/` + user + `/actions-runner/runsvc.sh
User=` + user + `
WorkingDirectory=/home/` + user + `/actions-runner
KillMode=process
KillSignal=SIGTERM
TimeoutStopSec=5min

[Install]
WantedBy=multi-user.target
`
}
