package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testSchema = []Option{
	{Name: "region", Required: true, Pattern: `[a-z]{2}-[a-z]+-[0-9]`, Usage: "AWS region"},
	{Name: "instanceTypes"},
	{Name: "tag.", KeyPattern: `[A-Za-z][A-Za-z0-9]*`},
}

func TestCheckOptionsTakesWhatTheSchemaDescribes(t *testing.T) {
	require.NoError(t, CheckOptions(testSchema, map[string]string{"kind": "ec2", "region": "eu-west-1",
		"instanceTypes": "m7g.large", "tag.team": "infra"}))
	cases := []struct {
		name  string
		given map[string]string
		want  string
	}{
		{"unknown option", map[string]string{"kind": "ec2", "region": "eu-west-1", "image": "x"},
			`provider ec2 takes no option "image" (it takes: region, instanceTypes, tag.NAME)`},
		{"missing required", map[string]string{"kind": "ec2"}, `provider ec2 needs option "region" (AWS region)`},
		{"value off its pattern", map[string]string{"kind": "ec2", "region": "eu-west-1; rm"},
			`provider option "region": "eu-west-1; rm" must match`},
		{"family key off its pattern", map[string]string{"kind": "ec2", "region": "eu-west-1", "tag.9x": "y"},
			`"9x" after "tag." must match`},
		{"family prefix alone", map[string]string{"kind": "ec2", "region": "eu-west-1", "tag.": "y"}, `takes no option "tag."`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckOptions(testSchema, c.given)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	err := CheckOptions(nil, map[string]string{"kind": "process", "image": "x"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "(it takes: none)")
}

func TestCheckSchemaRefusesWhatAnAgentMustNotReport(t *testing.T) {
	require.NoError(t, CheckSchema(testSchema))
	for name, s := range map[string][]Option{
		"bad name":           {{Name: "../x"}},
		"kind":               {{Name: "kind"}},
		"twice":              {{Name: "a"}, {Name: "a"}},
		"bad pattern":        {{Name: "a", Pattern: "("}},
		"key pattern":        {{Name: "a", KeyPattern: "x"}},
		"required family":    {{Name: "a.", Required: true}},
		"long pattern":       {{Name: "a", Pattern: string(make([]byte, MaxOptionPattern+1))}},
		"too many options":   make([]Option, MaxOptions+1),
		"empty option names": {{}},
	} {
		assert.Error(t, CheckSchema(s), name)
	}
}
