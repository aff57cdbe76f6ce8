package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPriceListPricesByProviderOption(t *testing.T) {
	prices, err := ParsePrices(`
# kind  option=value            price of a runner-hour
ec2     instanceType=m5.large    0.096
ec2     0.05                     # any other instance type
ec2     instanceType=c6i.xlarge  0.17
process 0.01
`)
	require.NoError(t, err)
	require.Len(t, prices, 4)
	assert.Equal(t, ProviderPrice{Kind: "ec2", Option: "instanceType", Value: "m5.large", Price: 0.096}, prices[0])
	assert.Equal(t, 0.096, PriceOf(prices, ProviderConfig{"kind": "ec2", "instanceType": "m5.large"}))
	assert.Equal(t, 0.17, PriceOf(prices, ProviderConfig{"kind": "ec2", "instanceType": "c6i.xlarge"}), "an option's entry comes before the kind's")
	assert.Equal(t, 0.05, PriceOf(prices, ProviderConfig{"kind": "ec2", "instanceType": "t3.micro"}))
	assert.Equal(t, 0.01, PriceOf(prices, ProviderConfig{"kind": "process"}))
	assert.Zero(t, PriceOf(prices, ProviderConfig{"kind": "external"}), "no entry: no price")
	assert.Zero(t, PriceOf(nil, ProviderConfig{"kind": "process"}))

	for text, want := range map[string]string{
		"ec2":                        "line 1: want KIND [OPTION=VALUE] PRICE",
		"ec2 a b c":                  "line 1: want KIND [OPTION=VALUE] PRICE",
		"ec2 instanceType 1":         `"instanceType": want OPTION=VALUE`,
		"ec2 -x=1 1":                 `"-x=1": want OPTION=VALUE`,
		"\nec2 cheap":                `line 2: price "cheap"`,
		"ec2 -1":                     "want a number from 0 to 10000",
		"ec2 NaN":                    "want a number from 0 to 10000",
		"# nothing but a comment\n ": "the price list is empty",
	} {
		_, err := ParsePrices(text)
		assert.ErrorContains(t, err, want, "%q", text)
	}
}

// TestAPoolWithoutHourlyPriceTakesTheListsPrice: the server's price list
// prices the idle runner of a pool that sets no hourlyPrice, until its
// hourlyPrice is set: each price counts for the time it held.
func TestAPoolWithoutHourlyPriceTakesTheListsPrice(t *testing.T) {
	e := newUsagePoolEnv(t)
	list := []ProviderPrice{{Kind: "ec2", Price: 99}, {Kind: "process", Price: 36}}
	var err1, err2 error
	e.configureWith(0, ConfigureRequest{Config: poolConfig(func(c *PoolConfig) { c.MinIdle = 1 }), Prices: list}, &err1)
	e.configureWith(100*time.Second, ConfigureRequest{Config: poolConfig(func(c *PoolConfig) { c.MinIdle = 1; c.HourlyPrice = 3.6 }),
		Prices: list}, &err2)
	var u RepositoryUsage
	var v PoolView
	e.at(200*time.Second, func() {
		u = e.usage("1h")
		v, _ = e.query().Pool(DefaultPool)
	})
	e.drain(300 * time.Second)
	e.run()
	require.NoError(t, err1)
	require.NoError(t, err2)
	all := sumBuckets(u.Pools[0].Buckets)
	assert.Equal(t, int64(200_000), all.IdleMs, "one warm runner, online at once")
	assert.InDelta(t, 100*0.01+100*0.001, all.WasteCost, 1e-9, "36 an hour for 100 s, then 3.6")
	require.NotNil(t, v.Usage)
	assert.Equal(t, 3.6, v.Usage.Price, "the price now")
}
