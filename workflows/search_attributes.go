package workflows

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Custom search attributes that make every run findable in the Web UI. They
// must be registered on the namespace (garo server does so at start).
var (
	// SearchAttributeAgent is the agent of an AgentWorkflow and of a
	// RunnerWorkflow. On a RepositoryWorkflow it is one of its pools'
	// agents (the default pool's when it has one); GaroAgents lists them
	// all.
	SearchAttributeAgent = temporal.NewSearchAttributeKeyKeyword("GaroAgent")
	// SearchAttributeAgents lists the agents of a repository's pools.
	SearchAttributeAgents      = temporal.NewSearchAttributeKeyKeywordList("GaroAgents")
	SearchAttributeRepository  = temporal.NewSearchAttributeKeyKeyword("GaroRepository")
	SearchAttributeRunnerState = temporal.NewSearchAttributeKeyKeyword("GaroRunnerState")
	// SearchAttributePool names the pool of a PoolWorkflow and of its
	// runners' workflows: owner/repo/pool (PoolRef.Key).
	SearchAttributePool = temporal.NewSearchAttributeKeyKeyword("GaroPool")
	// SearchAttributeReaped is how many orphans (instances and
	// registrations) a ReaperWorkflow run removed.
	SearchAttributeReaped = temporal.NewSearchAttributeKeyInt64("GaroReaped")
)

// SearchAttribute is a custom search attribute with the type it is
// registered with.
type SearchAttribute struct {
	Name string
	Type enumspb.IndexedValueType
}

// TypeName is the type as the temporal CLI names it: Keyword,
// KeywordList or Int.
func (a SearchAttribute) TypeName() string {
	switch a.Type {
	case enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST:
		return "KeywordList"
	case enumspb.INDEXED_VALUE_TYPE_INT:
		return "Int"
	}
	return "Keyword"
}

// SearchAttributes lists every custom search attribute Garo uses.
func SearchAttributes() []SearchAttribute {
	const keyword, list = enumspb.INDEXED_VALUE_TYPE_KEYWORD, enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST
	return []SearchAttribute{
		{SearchAttributeAgent.GetName(), keyword},
		{SearchAttributeAgents.GetName(), list},
		{SearchAttributeRepository.GetName(), keyword},
		{SearchAttributeRunnerState.GetName(), keyword},
		{SearchAttributePool.GetName(), keyword},
		{SearchAttributeReaped.GetName(), enumspb.INDEXED_VALUE_TYPE_INT},
	}
}

// RunningQuery is the visibility query of the running workflows of a
// type, of one agent when agent is set (a validated agent name, safe to
// quote). A repository matches when any of its pools is the agent's.
func RunningQuery(workflowType, agent string) string {
	q := fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running'", workflowType)
	if agent == "" {
		return q
	}
	if workflowType == RepositoryWorkflowName {
		// Runs started before several pools carry GaroAgent only.
		return q + fmt.Sprintf(" AND (%s = '%s' OR %s = '%s')", SearchAttributeAgents.GetName(), agent,
			SearchAttributeAgent.GetName(), agent)
	}
	return q + fmt.Sprintf(" AND %s = '%s'", SearchAttributeAgent.GetName(), agent)
}

// ensureSearchAttribute sets a keyword search attribute unless the run
// already carries it (it is set at start and kept across continue-as-new).
func ensureSearchAttribute(ctx workflow.Context, key temporal.SearchAttributeKeyKeyword, value string) error {
	if v, ok := workflow.GetTypedSearchAttributes(ctx).GetKeyword(key); ok && v == value {
		return nil
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, key.ValueSet(value)); err != nil {
		return fmt.Errorf("upsert search attribute %s: %w", key.GetName(), err)
	}
	return nil
}
