// Package ghname checks owner and repository names as GitHub allows them,
// in one place for the API, the webhook, the CLI, the workflows and the
// activities: a name that passes is safe in a GitHub URL path and in a
// workflow id.
package ghname

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	// owner: alphanumerics and single hyphens, not at the start or end.
	ownerPattern = regexp.MustCompile(`^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$`)
	repoPattern  = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
)

// Limits of GitHub's names.
const (
	MaxOwner = 39
	MaxRepo  = 100
)

// Owner checks a user or organization name.
func Owner(s string) error {
	if len(s) > MaxOwner || !ownerPattern.MatchString(s) {
		return fmt.Errorf("invalid owner %q: want at most %d letters, digits and single inner hyphens", s, MaxOwner)
	}
	return nil
}

// Repo checks a repository name.
func Repo(s string) error {
	if len(s) > MaxRepo || !repoPattern.MatchString(s) || s == "." || s == ".." || strings.HasSuffix(strings.ToLower(s), ".git") {
		return fmt.Errorf("invalid repository name %q: want at most %d letters, digits, '.', '-' or '_', not . or .. nor ending in .git", s, MaxRepo)
	}
	return nil
}

// Parse splits "owner/repo" and checks both parts.
func Parse(full string) (owner, repo string, err error) {
	owner, repo, ok := strings.Cut(full, "/")
	if !ok {
		return "", "", fmt.Errorf("invalid repository %q: want OWNER/REPO", full)
	}
	if err := Owner(owner); err != nil {
		return "", "", fmt.Errorf("invalid repository %q: %w", full, err)
	}
	if err := Repo(repo); err != nil {
		return "", "", fmt.Errorf("invalid repository %q: %w", full, err)
	}
	return owner, repo, nil
}
