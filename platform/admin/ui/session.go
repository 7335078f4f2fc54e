package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/plba/plba/platform/admin"
)

// signInCookie holds the sign-in form's own token (double submit): a
// sign-in posted from another site, which cannot read it, is refused.
const signInCookie = "plba_ui_signin"

type signInView struct {
	Token string
	Name  string
	Error string
}

// signInPage shows the sign-in form, or sends a caller who needs none
// (signed in already, or authentication off) to the overview.
func (u *UI) signInPage(w http.ResponseWriter, r *http.Request) error {
	var info admin.SessionInfo
	err := u.call(r, http.MethodGet, admin.SessionPath, nil, &info)
	var ae *APIError
	switch {
	case err == nil:
		redirect(w, r, Prefix)
		return nil
	case !errors.As(err, &ae) || ae.Code != http.StatusUnauthorized:
		return err
	}
	u.signInForm(w, r, http.StatusOK, "", "")
	return nil
}

func (u *UI) signInForm(w http.ResponseWriter, r *http.Request, code int, name, msg string) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Value: tok, Path: Prefix, MaxAge: 3600, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	u.render(w, code, "signin", view{Title: "Sign in", S: &session{}, Data: signInView{Token: tok, Name: name, Error: msg}})
}

// signIn checks the form's token, then signs in through the API (POST
// admin.SessionPath, which checks the password, limits failures and
// audits) and hands its session cookie to the browser.
func (u *UI) signIn(w http.ResponseWriter, r *http.Request) error {
	admin.AuditedElsewhere(r)
	r.Body = http.MaxBytesReader(w, r.Body, admin.MaxFormBody)
	if err := r.ParseForm(); err != nil {
		return &APIError{Code: http.StatusBadRequest, Msg: "form: " + err.Error()}
	}
	c, err := r.Cookie(signInCookie)
	got := r.PostForm.Get("token")
	if err != nil || got == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(got)) != 1 {
		u.signInForm(w, r, http.StatusBadRequest, "", "The sign-in form expired or came from another site: sign in again.")
		return nil
	}
	name := r.PostForm.Get("name")
	rec, err := u.do(r, http.MethodPost, admin.SessionPath, admin.SignIn{Name: name, Password: r.PostForm.Get("password")})
	if err != nil {
		return err
	}
	switch {
	case rec.code == http.StatusConflict: // authentication is off
		redirect(w, r, Prefix)
		return nil
	case rec.code < 200 || rec.code > 299:
		msg := "Wrong name or password."
		switch rec.code {
		case http.StatusTooManyRequests:
			msg = "Too many failed sign-ins from this address: try again " + retryIn(rec.header.Get("Retry-After")) + "."
		case http.StatusBadRequest:
			msg = "Give a name and a password."
		case http.StatusForbidden:
			msg = "Sign-in refused: the form came from another site."
		}
		u.signInForm(w, r, rec.code, name, msg)
		return nil
	}
	for _, sc := range rec.header.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", sc)
	}
	http.SetCookie(w, &http.Cookie{Name: signInCookie, Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode})
	redirect(w, r, Prefix)
	return nil
}

// signOut ends the session through the API (DELETE admin.SessionPath,
// with the session's CSRF token from the form) and sends the browser to
// the sign-in.
func (u *UI) signOut(w http.ResponseWriter, r *http.Request) error {
	admin.AuditedElsewhere(r)
	r.Body = http.MaxBytesReader(w, r.Body, admin.MaxFormBody)
	if err := r.ParseForm(); err != nil {
		return &APIError{Code: http.StatusBadRequest, Msg: "form: " + err.Error()}
	}
	rec, err := u.do(r, http.MethodDelete, admin.SessionPath, nil)
	if err != nil {
		return err
	}
	if rec.code < 200 || rec.code > 299 {
		return &APIError{Code: rec.code, Msg: "sign out refused: reload the page and try again"}
	}
	for _, sc := range rec.header.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", sc)
	}
	redirect(w, r, Prefix+"signin")
	return nil
}

// retryIn words the API's Retry-After (seconds) for the sign-in form:
// "in 12 seconds", "in 12 minutes"; "later" without one.
func retryIn(after string) string {
	secs, err := strconv.Atoi(after)
	if err != nil || secs < 1 {
		return "later"
	}
	d := time.Duration(secs) * time.Second
	if d < 2*time.Minute {
		return "in " + strconv.Itoa(secs) + " seconds"
	}
	return "in " + strconv.Itoa(int((d+time.Minute-1)/time.Minute)) + " minutes"
}
