// Package provider defines what a compute provider does for Garo: create,
// delete, get and list the instances that run GitHub runners. Every
// operation is keyed by the runner's name, so that activities calling it
// can be retried safely.
package provider

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Errors every provider returns for these cases (wrapped or not).
var (
	// ErrNotFound: no instance has that name.
	ErrNotFound = errors.New("instance not found")
	// ErrDuplicate: an instance with that name exists already; Create
	// returns it beside this error.
	ErrDuplicate = errors.New("instance already exists")
	// ErrRefused: the provider refuses the request as configured (an
	// image that does not exist, a permission missing): retrying cannot
	// help until the pool or the agent's credentials change.
	ErrRefused = errors.New("refused by the provider")
)

// Instance states.
const (
	StateRunning = "running"
	StateExited  = "exited"
)

// Instance is one compute instance that runs (or ran) a runner.
type Instance struct {
	// Name is the runner's name, unique per provider.
	Name string `json:"name"`
	// ID is the provider's own id (a pid, an EC2 instance id...).
	ID        string            `json:"id"`
	State     string            `json:"state"`
	Tags      map[string]string `json:"tags,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
	// ExitCode of an exited process-like instance.
	ExitCode int `json:"exitCode,omitempty"`
}

// CreateRequest asks for an instance. Env and Stdin carry secrets (a JIT
// config): providers hand them to the runner and never log or store them.
type CreateRequest struct {
	Name string
	Tags map[string]string
	// Options are the pool's provider options, as Options describes them
	// (checked), without "kind".
	Options map[string]string
	// RepoURL and Labels are the runner's repository and labels, for
	// providers that register runners themselves (GARM's bootstrap).
	RepoURL string
	Labels  []string
	Env     map[string]string
	Stdin   []byte
}

// Provider creates and deletes runner instances.
type Provider interface {
	// Kind names the provider ("process", "ec2", ...).
	Kind() string
	// Options lists the options a pool may give this provider.
	Options() []Option
	// Create starts an instance called req.Name. If one exists already it
	// returns that one and ErrDuplicate.
	Create(ctx context.Context, req CreateRequest) (Instance, error)
	// Delete stops and removes the instance called name; ErrNotFound when
	// there is none.
	Delete(ctx context.Context, name string) error
	// Get returns the instance called name, or ErrNotFound.
	Get(ctx context.Context, name string) (Instance, error)
	// List returns the instances whose tags include all of tags.
	List(ctx context.Context, tags map[string]string) ([]Instance, error)
}

// ExitNotifier is a provider that learns of an instance's exit as it
// happens (a process it started, a cloud event it receives), so that a
// watch need not wait for its next look.
type ExitNotifier interface {
	// Exited returns a channel closed when the instance called name has
	// exited, or nil when the provider cannot tell for that instance.
	Exited(name string) <-chan struct{}
}

// HasTags reports whether have includes every key and value of want.
func HasTags(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// NameLocks serialises operations on one instance name within a process,
// and forgets a name once nobody holds or waits for it: an agent that
// lives for months sees millions of names.
type NameLocks struct {
	mu    sync.Mutex
	locks map[string]*nameLock
}

type nameLock struct {
	sync.Mutex
	users int
}

// Lock locks name and returns its unlock.
func (n *NameLocks) Lock(name string) (unlock func()) {
	n.mu.Lock()
	if n.locks == nil {
		n.locks = map[string]*nameLock{}
	}
	l, ok := n.locks[name]
	if !ok {
		l = &nameLock{}
		n.locks[name] = l
	}
	l.users++
	n.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		n.mu.Lock()
		if l.users--; l.users == 0 {
			delete(n.locks, name)
		}
		n.mu.Unlock()
	}
}

// Len is how many names are held or waited for.
func (n *NameLocks) Len() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.locks)
}
