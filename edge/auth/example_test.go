package auth_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-dev/switchboard/core"
	"github.com/switchboard-dev/switchboard/edge/auth"
)

func ExampleNew() {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a, err := auth.New(context.Background(), auth.Config{
		Secret:   secret,
		Issuer:   "https://login.example",
		Audience: "switchboard",
	})
	if err != nil {
		panic(err)
	}
	defer a.Close()

	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "ada",
		"iss": "https://login.example",
		"aud": "switchboard",
		"exp": time.Now().Add(time.Hour).Unix(),
		"rooms": map[string]any{
			"subscribe": []string{"chat:*", "user:ada"},
			"publish":   []string{"chat:*"},
		},
	}).SignedString(secret)

	id, err := a.Authenticate(context.Background(), core.Credentials{Token: token})
	fmt.Println(id.User, id.Permissions.CanSubscribe("chat:lobby"), id.Permissions.CanPublish("user:ada"), err)

	_, err = a.Authenticate(context.Background(), core.Credentials{})
	fmt.Println(errors.Is(err, core.ErrUnauthorized), err)
	// Output:
	// ada true false <nil>
	// true switchboard/core: unauthorized: token required
}
