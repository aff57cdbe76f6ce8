// Package codeshape holds tests of the code's shape: rules a reviewer
// would otherwise have to check by hand.
package codeshape

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// maxFuncLines bounds the length of a function outside tests.
const maxFuncLines = 80

// sourceFiles parses every Go file of the module but tests.
func sourceFiles(t *testing.T) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "bin" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files[path] = f
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, len(files), 50)
	return fset, files
}

func TestNoFunctionIsLongerThan80Lines(t *testing.T) {
	fset, files := sourceFiles(t)
	for path, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			var body *ast.BlockStmt
			name := ""
			switch fn := n.(type) {
			case *ast.FuncDecl:
				body, name = fn.Body, fn.Name.Name
			case *ast.FuncLit:
				body, name = fn.Body, "func literal"
			}
			if body == nil {
				return true
			}
			start, end := fset.Position(n.Pos()), fset.Position(body.End())
			lines := end.Line - start.Line + 1
			assert.LessOrEqual(t, lines, maxFuncLines, "%s:%d: %s has %d lines", path, start.Line, name, lines)
			return true
		})
	}
}

// TestOldNamesAreGone: one word names one thing. A repository has pools;
// a pool has runners and a queue. These names, declared in these
// packages, meant otherwise before a repository had several pools, or were
// second copies of a name.
func TestOldNamesAreGone(t *testing.T) {
	gone := map[string]map[string]string{
		"api": {"type Pools": "Repositories", "TemporalPools": "TemporalRepositories", "putRepository": "putPool",
			"deleteRepository": "deletePool"},
		"workflows": {"PoolID": "RunnerInput.RepositoryID", "SearchAttributeKeys": "SearchAttributes",
			"ErrUnregistering": "ErrTypeUnregistering", "ErrNotRegistered": "ErrTypeNotRegistered"},
		"activities/github": {"ListRunnersName": "activities.GitHubListRunnersName",
			"ListQueuedJobsName": "activities.GitHubListQueuedJobsName", "ErrTypeRunnerBusy": "activities.ErrTypeRunnerBusy"},
	}
	_, files := sourceFiles(t)
	for path, f := range files {
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			assert.NotEqual(t, "github.com/garo-run/garo/activities/pools", p, "%s imports activities/pools: it is activities/agentpools", path)
		}
		dir, _ := filepath.Rel(filepath.Join("..", ".."), filepath.Dir(path))
		old := gone[filepath.ToSlash(dir)]
		ast.Inspect(f, func(n ast.Node) bool {
			for _, id := range declared(n) {
				if now, ok := old[id.Name]; ok {
					t.Errorf("%s: %s is an old name; it is %s now", path, id.Name, now)
				}
			}
			if ts, ok := n.(*ast.TypeSpec); ok {
				if now, ok := old["type "+ts.Name.Name]; ok {
					t.Errorf("%s: type %s is an old name; it is %s now", path, ts.Name.Name, now)
				}
			}
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				switch s, _ := strconv.Unquote(lit.Value); s {
				case "InvalidInput", "RunnerBusy", "NameInUse":
					if !strings.HasSuffix(path, filepath.Join("activities", "errors.go")) {
						t.Errorf("%s: error type %q is a literal; use its constant", path, s)
					}
				}
			}
			return true
		})
	}
}

// declared returns the names n declares.
func declared(n ast.Node) []*ast.Ident {
	switch d := n.(type) {
	case *ast.FuncDecl:
		return []*ast.Ident{d.Name}
	case *ast.TypeSpec:
		return []*ast.Ident{d.Name}
	case *ast.ValueSpec:
		return d.Names
	case *ast.Field:
		return d.Names
	}
	return nil
}
