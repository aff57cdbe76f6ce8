package workflows

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ProviderPrice is the price of a runner-hour of the pools of a provider
// kind whose provider option Option is Value (ec2, instanceType,
// m5.large); an entry without Option prices every other pool of the kind.
// A pool whose hourlyPrice is 0 takes its price from the server's list.
type ProviderPrice struct {
	Kind   string  `json:"kind"`
	Option string  `json:"option,omitempty"`
	Value  string  `json:"value,omitempty"`
	Price  float64 `json:"price"`
}

// MaxPrices bounds a price list: it travels with every configure.
const MaxPrices = 200

// PriceOf is the list's price of a runner-hour of a pool with provider p:
// the first entry of its kind whose option p has, else the kind's entry
// without option; 0 when none fits.
func PriceOf(prices []ProviderPrice, p ProviderConfig) float64 {
	var kindWide *ProviderPrice
	for i, e := range prices {
		switch {
		case e.Kind != p.Kind():
		case e.Option == "":
			if kindWide == nil {
				kindWide = &prices[i]
			}
		case p[e.Option] == e.Value:
			return e.Price
		}
	}
	if kindWide != nil {
		return kindWide.Price
	}
	return 0
}

// ParsePrices reads a price list, one entry a line: "KIND PRICE" or
// "KIND OPTION=VALUE PRICE"; blank lines and text after # are ignored.
func ParsePrices(text string) ([]ProviderPrice, error) {
	var out []ProviderPrice
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) > 3 || len(f) < 2 {
			return nil, fmt.Errorf("line %d: want KIND [OPTION=VALUE] PRICE", n)
		}
		e := ProviderPrice{Kind: f[0]}
		if len(f) == 3 {
			var ok bool
			if e.Option, e.Value, ok = strings.Cut(f[1], "="); !ok || !optionNamePattern.MatchString(e.Option) {
				return nil, fmt.Errorf("line %d: %q: want OPTION=VALUE", n, f[1])
			}
		}
		price, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil || !(price >= 0 && price <= MaxHourlyPrice) {
			return nil, fmt.Errorf("line %d: price %q: want a number from 0 to %d", n, f[len(f)-1], MaxHourlyPrice)
		}
		e.Price = price
		if out = append(out, e); len(out) > MaxPrices {
			return nil, fmt.Errorf("more than %d prices", MaxPrices)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read price list: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("the price list is empty")
	}
	return out, nil
}
