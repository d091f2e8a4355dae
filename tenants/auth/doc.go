// Package auth holds Strata's security: JWT authentication compatible with
// Pulsar's token authentication (HS256 secret or RS256/ES256 public key,
// role in the "sub" claim), the helpers behind `strata tokens`, and the
// Authorizer that decides what a role may do (superusers, tenant admins,
// namespace produce/consume permissions).
package auth
