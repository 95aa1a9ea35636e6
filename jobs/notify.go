package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"drill/drills"

	"github.com/riverqueue/river"
)

// HTTPDoer sends HTTP requests (an *http.Client).
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

func defaultHTTPClient() HTTPDoer { return &http.Client{Timeout: 10 * time.Second} }

// Payload is the JSON posted to webhooks. Text makes it readable in Slack
// and compatible chat tools.
type Payload struct {
	Text    string          `json:"text"`
	Event   string          `json:"event"`
	Drill   string          `json:"drill"`
	Run     *drills.RunJSON `json:"run,omitempty"`
	Overdue *OverdueInfo    `json:"overdue,omitempty"`
}

// OverdueInfo describes an overdue drill.
type OverdueInfo struct {
	Schedule      string  `json:"schedule"`
	LastSuccessAt *string `json:"last_success_at"`
}

// notifyWorker posts one notification. Failures are retried with
// backoff; they never touch the drill's own record.
type notifyWorker struct {
	river.WorkerDefaults[NotifyArgs]
	cfg Config
}

func (w *notifyWorker) NextRetry(job *river.Job[NotifyArgs]) time.Time {
	return time.Now().Add(backoff(job.Attempt))
}

func (w *notifyWorker) Timeout(*river.Job[NotifyArgs]) time.Duration { return time.Minute }

func (w *notifyWorker) Work(ctx context.Context, job *river.Job[NotifyArgs]) error {
	spec := w.cfg.drills().Drill(job.Args.Drill)
	if spec == nil || job.Args.Webhook >= len(spec.Notify) {
		return river.JobCancel(fmt.Errorf("webhook %d of drill %q is no longer configured", job.Args.Webhook, job.Args.Drill))
	}
	p, err := w.payload(ctx, spec, job.Args)
	if err != nil {
		return err
	}
	body, err := json.Marshal(p)
	if err != nil {
		return river.JobCancel(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, spec.Notify[job.Args.Webhook].Webhook, bytes.NewReader(body))
	if err != nil {
		return river.JobCancel(fmt.Errorf("webhook %d of drill %s: bad URL", job.Args.Webhook, spec.Name))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "drill/"+Version)
	resp, err := w.cfg.HTTPClient.Do(req)
	if err != nil {
		// The URL is a secret: name the webhook by its position only.
		return fmt.Errorf("webhook %d of drill %s: request failed", job.Args.Webhook, spec.Name)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %d of drill %s: HTTP %d", job.Args.Webhook, spec.Name, resp.StatusCode)
	}
	w.cfg.Logger.Info("notification delivered", "drill", spec.Name, "event", job.Args.Event, "webhook", job.Args.Webhook, "run_id", job.Args.RunID)
	return nil
}

func (w *notifyWorker) payload(ctx context.Context, spec *drills.Spec, a NotifyArgs) (Payload, error) {
	p := Payload{Event: a.Event, Drill: spec.Name}
	switch a.Event {
	case EventFailed:
		run, err := w.cfg.Store.Run(ctx, a.RunID)
		if err != nil {
			return p, err
		}
		j := run.JSON()
		p.Run = &j
		p.Text = fmt.Sprintf(":rotating_light: Restore drill *%s* failed (run %d, %s): %s", spec.Name, run.ID, run.Reason, run.Error)
	case EventOverdue:
		st, err := ScheduleStatuses(ctx, w.cfg.Store, &drills.Config{Drills: []*drills.Spec{spec}, OverdueGrace: w.cfg.drills().OverdueGrace}, w.cfg.Now())
		if err != nil {
			return p, err
		}
		p.Overdue = &OverdueInfo{Schedule: spec.Schedule}
		last := "never"
		if len(st) == 1 && st[0].LastSuccessAt != nil {
			s := st[0].LastSuccessAt.UTC().Format(time.RFC3339)
			p.Overdue.LastSuccessAt, last = &s, s
		}
		p.Text = fmt.Sprintf(":warning: Restore drill *%s* is overdue (schedule %s, last success %s)", spec.Name, spec.Schedule, last)
	default:
		return p, river.JobCancel(fmt.Errorf("unknown event %q", a.Event))
	}
	return p, nil
}
