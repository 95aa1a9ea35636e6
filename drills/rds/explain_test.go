package rds

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
)

// AWS's refusals cannot be produced by the emulator (it accepts any
// credentials); the messages users get for them are checked here.
func TestExplain(t *testing.T) {
	cases := []struct {
		code, action string
		want         []string
	}{
		{"AccessDenied", "RestoreDBInstanceFromDBSnapshot", []string{"rds:RestoreDBInstanceFromDBSnapshot", "docs/iam-policy.json"}},
		{"InsufficientDBInstanceCapacity", "RestoreDBInstanceFromDBSnapshot", []string{"another instance_class"}},
		{"InvalidClientTokenId", "DescribeDBSnapshots", []string{"rejected the credentials", "AWS_PROFILE"}},
		{"SomethingNew", "DeleteDBInstance", []string{"rds DeleteDBInstance: SomethingNew: boom"}},
	}
	for _, tc := range cases {
		err := explain(tc.action, &smithy.GenericAPIError{Code: tc.code, Message: "boom"})
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tc.code, err, w)
			}
		}
	}
	if err := explain("X", errors.New("dial tcp: refused")); !strings.Contains(err.Error(), "rds X: dial tcp") {
		t.Errorf("plain error: %v", err)
	}
}
