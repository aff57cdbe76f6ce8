package ghname

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNamesAsGitHubAllowsThem(t *testing.T) {
	for _, ok := range []string{"octo/app", "a/b", "Octo-Cat/my.repo_2", "x1-y2-z3/.github", strings.Repeat("o", 39) + "/" + strings.Repeat("r", 100)} {
		_, _, err := Parse(ok)
		assert.NoError(t, err, ok)
	}
	for _, bad := range []string{
		"", "octo", "octo/", "/app", "../one", "./one", "octo/..", "octo/.", "-probe/one", "probe-/one", "pro--be/one",
		"probe/one.git", "probe/one.GIT", "octo_cat/app", "oc.to/app", "octo/a b", "octo/a\nb", "octo/a/b", "octo/%2e%2e",
		strings.Repeat("o", 40) + "/app", "octo/" + strings.Repeat("r", 101), "octo/ä",
	} {
		_, _, err := Parse(bad)
		assert.Error(t, err, "%q", bad)
	}
}

// FuzzParse: whatever Parse accepts is safe in a URL path and a workflow
// id: no slash, dot segment, control character, space or percent sign.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"octo/app", "../one", "-probe/one", "probe/one.git", "a/b/c", "octo/a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		owner, repo, err := Parse(s)
		if err != nil {
			return
		}
		for _, part := range []string{owner, repo} {
			if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "/\\%?# \t\r\n\x00") {
				t.Fatalf("Parse(%q) accepted %q", s, part)
			}
		}
		if owner+"/"+repo != s {
			t.Fatalf("Parse(%q) = %q, %q", s, owner, repo)
		}
	})
}
