package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/plba/plba/platform/admin"
)

// TestDemoUserAndToken: admin.auth.demo adds the operator user "demo"
// and the token "demo-token", with a password and a token made at
// start and printed (at warn, with the UI's address) in the start-up
// log; both work, and authentication is on. The demo is refused off
// loopback and when its names are taken.
func TestDemoUserAndToken(t *testing.T) {
	t.Parallel()
	off := admin.Config{Listen: "0.0.0.0:8080", Auth: admin.AuthConfig{Demo: true}}
	err := off.Validate()
	require.ErrorContains(t, err, "auth.demo")
	require.ErrorContains(t, err, "loopback")
	taken := local()
	taken.Auth = admin.AuthConfig{Demo: true, Users: []admin.UserConfig{{Name: "demo", Role: admin.RoleViewer, PasswordHash: hash(t, "demodemo")}}}
	require.ErrorContains(t, taken.Validate(), `auth.demo: "demo" is also the name of auth.users[0]`)

	c := local()
	c.Auth.Demo = true
	core, logs := observer.New(zapcore.InfoLevel)
	srv, err := admin.NewServer(c, zap.New(core), admin.StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	lines := logs.FilterMessageSnippet("DEMO user").All()
	require.Len(t, lines, 1)
	require.Equal(t, zapcore.WarnLevel, lines[0].Level)
	f := lines[0].ContextMap()
	require.Equal(t, "http://"+srv.Addr()+"/ui/", f["ui"])
	require.Equal(t, admin.DemoUser, f["name"])
	pw, tok := f["password"].(string), f["token"].(string)
	require.GreaterOrEqual(t, len(pw), 16)
	require.GreaterOrEqual(t, len(tok), admin.MinTokenLength)
	require.Contains(t, f["ctl"], "PLBA_CTL_TOKEN="+tok)

	base := "http://" + srv.Addr()
	res, err := http.Get(base + admin.StatusPath)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, "the demo turns authentication on")
	res, err = http.Post(base+admin.SessionPath, "application/json", strings.NewReader(`{"name":"demo","password":"`+pw+`"}`))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "the demo user signs in")
	req, err := http.NewRequest(http.MethodGet, base+admin.SessionPath, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	var info admin.SessionInfo
	defer res.Body.Close()
	require.NoError(t, json.NewDecoder(res.Body).Decode(&info))
	require.Equal(t, admin.Identity{Name: admin.DemoToken, Role: admin.RoleOperator, Kind: "token"}, info.Identity)
}
