// Package web serves drill history, schedules and run details as HTML and
// JSON, and /metrics.
package web
