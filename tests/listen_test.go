package tests

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/garo-run/garo/api/apiclient"
	"github.com/garo-run/garo/workflows"
)

// socketInodes are the inodes of the sockets process pid holds open.
func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]bool{}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			out[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	return out
}

// listeningInodes are the inodes of the TCP sockets in state LISTEN.
func listeningInodes(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		file, err := os.Open(f)
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && fields[3] == "0A" { // TCP_LISTEN
				out[fields[9]] = true
			}
		}
		file.Close()
	}
	return out
}

// TestTheAgentListensOnNothing: an agent opens every connection itself;
// without --metrics-listen it holds no listening socket, while it holds
// the connections it made.
func TestTheAgentListensOnNothing(t *testing.T) {
	t.Parallel()
	const ns = "e2e-listen"
	url := startServer(t, ns)
	agent := startAgent(t, ns, url, "listen-1")
	api := apiclient.New(url, adminToken)
	eventually(t, 30*time.Second, "the agent online", func() bool {
		st, err := api.GetAgent(context.Background(), "listen-1")
		return err == nil && st.Status == workflows.AgentOnline
	})
	time.Sleep(time.Second) // its worker polls by now
	sockets := socketInodes(t, agent.cmd.Process.Pid)
	require.NotEmpty(t, sockets, "it holds its connections to the server and Temporal")
	listening := listeningInodes(t)
	for inode := range sockets {
		assert.False(t, listening[inode], "the agent listens on socket %s", inode)
	}
}
