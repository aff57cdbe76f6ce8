package workflows

import (
	"strings"
	"testing"
)

// FuzzNames: a repository, agent or pool name that is accepted makes
// workflow ids and task queues from which it comes back whole: no two
// names share an id, and no name reaches outside its own.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"octo/app", "Octo/App", "../one", "lab-1", "default", "a/b/c", "gpu-", "x\x00y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if owner, repo, err := ParseRepository(s); err == nil {
			rest, ok := strings.CutPrefix(RepositoryWorkflowID(owner, repo), "garo/repo/")
			if !ok || rest != strings.ToLower(s) || strings.Count(rest, "/") != 1 {
				t.Fatalf("repository %q has workflow id %q", s, RepositoryWorkflowID(owner, repo))
			}
		}
		if ValidateAgentName(s) == nil {
			if q, _ := strings.CutPrefix(AgentTaskQueue(s), "garo-agent-"); q != s || strings.ContainsAny(s, "/. ") {
				t.Fatalf("agent %q has task queue %q", s, AgentTaskQueue(s))
			}
		}
		if ValidatePoolName(s) == nil && (strings.ContainsAny(s, "/. ") || strings.ToLower(s) != s) {
			t.Fatalf("pool name %q accepted", s)
		}
	})
}
