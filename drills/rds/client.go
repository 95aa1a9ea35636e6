// Package rds restores RDS PostgreSQL snapshots (or a point in time) into
// isolated, tagged RDS instances: a Source (rds-snapshot, rds-pitr) and a
// Target (rds) on aws-sdk-go-v2/service/rds. Deletes happen only after the
// instance's tags prove it is this tool's, for this run.
package rds

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/smithy-go"
)

// newClient builds an RDS client from the standard AWS environment
// (credentials chain, AWS_REGION, AWS_ENDPOINT_URL_RDS / AWS_ENDPOINT_URL),
// with the SDK's adaptive retryer for throttling.
func newClient(ctx context.Context, region string) (*rds.Client, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
				o.StandardOptions = append(o.StandardOptions, func(so *retry.StandardOptions) { so.MaxAttempts = 10 })
			})
		}),
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set AWS_REGION or region: in the drill's source/target")
	}
	return rds.NewFromConfig(cfg), nil
}

// explain turns the RDS errors users meet into messages that say what to do.
func explain(action string, err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("rds %s: %w", action, err)
	}
	switch apiErr.ErrorCode() {
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
		return fmt.Errorf("rds %s: access denied: the credentials need rds:%s (see docs/iam-policy.json): %s", action, action, apiErr.ErrorMessage())
	case "InsufficientDBInstanceCapacity":
		return fmt.Errorf("rds %s: AWS has no capacity for this instance class here right now: choose another instance_class or retry later (%s)", action, apiErr.ErrorMessage())
	case "DBSnapshotNotFound":
		return fmt.Errorf("rds %s: snapshot not found: %s", action, apiErr.ErrorMessage())
	case "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "UnrecognizedClientException":
		return fmt.Errorf("rds %s: AWS rejected the credentials (%s): check AWS_PROFILE / AWS_ACCESS_KEY_ID", action, apiErr.ErrorCode())
	}
	return fmt.Errorf("rds %s: %s: %s", action, apiErr.ErrorCode(), apiErr.ErrorMessage())
}

// isCode reports whether err is the RDS error code.
func isCode(err error, code string) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == code
}
