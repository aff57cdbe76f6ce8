package external

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/garo-run/garo/activities/github"
)

// Setup is how an agent declares its external providers.
type Setup struct {
	// Declarations are NAME=EXECUTABLE[,config=FILE][,env=PREFIX:PREFIX].
	Declarations []string
	// StateDir is the agent's; the records go to StateDir/external.
	StateDir, Agent string
	// Listen is the instance listener's address, URL where instances reach
	// it (default http://ADDRESS).
	Listen, URL string
	// GitHub lists the runner's downloads for the bootstrap's tools.
	GitHub *github.Client
	Logger *slog.Logger
}

// Start declares the external providers and serves their instances'
// metadata and callback routes on the instance listener until ctx ends.
func Start(ctx context.Context, s Setup) (*Provider, error) {
	if s.StateDir == "" {
		return nil, errors.New("--external-provider needs --state-dir")
	}
	if s.Listen == "" {
		return nil, errors.New("--external-provider needs --instance-listen: its instances fetch their runner's configuration there")
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	var exes []Executable
	for _, d := range s.Declarations {
		e, err := ParseExecutable(d)
		if err != nil {
			return nil, err
		}
		exes = append(exes, e)
	}
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return nil, fmt.Errorf("instance listener: %w", err)
	}
	url := s.URL
	if url == "" {
		url = "http://" + ln.Addr().String()
	}
	sessions := &Sessions{BaseURL: url, Log: s.Logger.With("listener", "instances")}
	srv := &http.Server{Handler: http.MaxBytesHandler(sessions, 1<<20), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	s.Logger.Info("Instance listener serving external providers' instances", "addr", ln.Addr().String(), "url", url)
	cfg := Config{Executables: exes, StateDir: filepath.Join(s.StateDir, "external"), Agent: s.Agent,
		Sessions: sessions, Logger: s.Logger.With("provider", Kind)}
	if gh := s.GitHub; gh != nil {
		cfg.Tools = CacheTools(time.Hour, func(ctx context.Context, repository string) ([]Tool, error) {
			owner, name, _ := strings.Cut(repository, "/")
			list, err := gh.RunnerDownloads(ctx, github.Repo{Owner: owner, Name: name})
			if err != nil {
				return nil, err
			}
			tools := make([]Tool, 0, len(list))
			for _, d := range list {
				tools = append(tools, Tool{OS: d.OS, Architecture: d.Architecture, DownloadURL: d.DownloadURL,
					Filename: d.Filename, SHA256: d.SHA256})
			}
			return tools, nil
		})
	}
	p, err := New(cfg)
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	return p, nil
}
