package github

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// Bounds of one redelivery pass.
const (
	// maxRedeliveries is the most deliveries one pass asks GitHub to
	// send again.
	maxRedeliveries = 100
	// maxDeliveryPages bounds the pages of deliveries a pass reads per
	// hook (100 each, newest first).
	maxDeliveryPages = 10
	// maxAttempts: an event GitHub has tried this often is not asked for
	// again (the receiver refuses it for good).
	maxAttempts = 5
)

// RedeliverFailed asks GitHub to deliver again each workflow_job event
// that a webhook of repo failed to deliver since since, and that no
// later attempt delivered: the repository's own hooks that subscribe to
// workflow_job, and, with App credentials, the App's webhook (its
// deliveries of repo's events). GitHub never sends a failed delivery again
// by itself. It returns how many it asked for.
func (c *Client) RedeliverFailed(ctx context.Context, repo Repo, since time.Time) (int, error) {
	if err := validRepo(repo); err != nil {
		return 0, err
	}
	asked := 0
	hooks, err := c.repoHooks(ctx, repo)
	if err != nil {
		return 0, err
	}
	for _, h := range hooks {
		n, err := redeliverHook(ctx, since, maxRedeliveries-asked, nil,
			func(opts *gh.ListCursorOptions) ([]*gh.HookDelivery, *gh.Response, error) {
				return c.gh.Repositories.ListHookDeliveries(ctx, repo.Owner, repo.Name, h, opts)
			},
			func(id int64) error {
				_, _, err := c.gh.Repositories.RedeliverHookDelivery(ctx, repo.Owner, repo.Name, h, id)
				return accepted(err)
			})
		asked += n
		if err != nil {
			return asked, fmt.Errorf("redeliver the failed deliveries of hook %d of %s: %w", h, repo, err)
		}
	}
	if c.app == nil {
		return asked, nil
	}
	r, resp, err := c.gh.Repositories.Get(ctx, repo.Owner, repo.Name)
	if err != nil {
		return asked, classify("get "+repo.String(), resp, err)
	}
	n, err := redeliverHook(ctx, since, maxRedeliveries-asked, func(d *gh.HookDelivery) bool { return d.GetRepositoryID() == r.GetID() },
		func(opts *gh.ListCursorOptions) ([]*gh.HookDelivery, *gh.Response, error) {
			return c.app.Apps.ListHookDeliveries(ctx, opts)
		},
		func(id int64) error {
			_, _, err := c.app.Apps.RedeliverHookDelivery(ctx, id)
			return accepted(err)
		})
	asked += n
	if err != nil {
		return asked, fmt.Errorf("redeliver the failed deliveries of the App's webhook for %s: %w", repo, err)
	}
	return asked, nil
}

// repoHooks lists the ids of repo's active hooks that get workflow_job.
func (c *Client) repoHooks(ctx context.Context, repo Repo) ([]int64, error) {
	var ids []int64
	opts := &gh.ListOptions{PerPage: 100}
	for {
		hooks, resp, err := c.gh.Repositories.ListHooks(ctx, repo.Owner, repo.Name, opts)
		if err != nil {
			return nil, classify("list the hooks of "+repo.String(), resp, err)
		}
		for _, h := range hooks {
			if h.GetActive() && (slices.Contains(h.Events, "workflow_job") || slices.Contains(h.Events, "*")) {
				ids = append(ids, h.GetID())
			}
		}
		if resp.NextPage == 0 {
			return ids, nil
		}
		opts.Page = resp.NextPage
	}
}

// redeliverHook reads a hook's deliveries, newest first, back to since,
// and redelivers the latest failed attempt of each workflow_job event
// (that keep accepts) none of whose attempts succeeded, at most limit.
func redeliverHook(ctx context.Context, since time.Time, limit int, keep func(*gh.HookDelivery) bool,
	list func(*gh.ListCursorOptions) ([]*gh.HookDelivery, *gh.Response, error), redeliver func(id int64) error) (int, error) {
	delivered := map[string]bool{}
	attempts := map[string]int{}
	var failed []*gh.HookDelivery // the latest failed attempt of each event, newest first
	opts := &gh.ListCursorOptions{PerPage: 100}
	for page := 0; page < maxDeliveryPages; page++ {
		ds, resp, err := list(opts)
		if err != nil {
			return 0, err
		}
		old := false
		for _, d := range ds {
			if d.GetDeliveredAt().Before(since) {
				old = true
				break
			}
			if d.GetEvent() != "workflow_job" || (keep != nil && !keep(d)) {
				continue
			}
			guid := d.GetGUID()
			attempts[guid]++
			switch code := d.GetStatusCode(); {
			case code >= 200 && code < 300:
				delivered[guid] = true
			case attempts[guid] == 1:
				failed = append(failed, d)
			}
		}
		if old || resp.Cursor == "" {
			break
		}
		opts.Cursor = resp.Cursor
	}
	asked := 0
	for i := len(failed) - 1; i >= 0 && asked < limit; i-- { // oldest first
		d := failed[i]
		if delivered[d.GetGUID()] || attempts[d.GetGUID()] >= maxAttempts {
			continue
		}
		if err := redeliver(d.GetID()); err != nil {
			return asked, err
		}
		asked++
	}
	return asked, nil
}

// accepted treats GitHub's 202 Accepted, which go-github reports as an
// error, as success.
func accepted(err error) error {
	var a *gh.AcceptedError
	if errors.As(err, &a) {
		return nil
	}
	return err
}
