package github

import dto "github.com/prometheus/client_model/go"

// dtoMetric reads one counter's value.
type dtoMetric struct{ m dto.Metric }

func (d *dtoMetric) metric() *dto.Metric { return &d.m }

func (d *dtoMetric) value() float64 { return d.m.GetCounter().GetValue() }
