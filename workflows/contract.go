// Package workflows holds Garo's Temporal workflow definitions and the types
// they exchange with the API and the workers. Everything in this package is
// deterministic workflow code or plain data.
//
// Each workflow has one contract file (agent_contract.go,
// repository_contract.go, runner_contract.go, tokens_contract.go): its
// type name, workflow id, task queue, signals, updates, queries, search
// attributes and the error types its handlers answer with. What several
// workflows share is here, in search_attributes.go and in errors.go.
package workflows

// ServerTaskQueue is the task queue of the control-plane workflows; every
// garo server replica polls it.
const ServerTaskQueue = "garo-server"

// QueryState is the query that answers a workflow's whole record: an
// agent's AgentState, a repository's RepositoryView.
const QueryState = "state"

// MemoSummary is the memo field that carries a workflow's summary, so that a
// listing needs no query per workflow.
const MemoSummary = "summary"
