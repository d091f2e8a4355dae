package bookie

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-mq/strata/metadata"
)

// A cookie ties a data directory to a bookie identity and a cluster. It is
// written to the data directory and to the metadata store when a bookie first
// starts; afterwards both must agree. This catches a wiped or swapped disk
// (which would otherwise silently lose the bookie's replicas while it looks
// healthy) and a bookie pointed at the wrong cluster.
type cookie struct {
	Version    int    `json:"version"`
	BookieID   string `json:"bookieId"`
	InstanceID string `json:"instanceId"`
}

const (
	cookieVersion = 1
	cookieFile    = "COOKIE"
	cookieTmpFile = "COOKIE.tmp"
)

// checkCookie validates (or, for a new bookie, creates) the cookie.
//
// A new bookie writes COOKIE.tmp, creates the metadata cookie, then renames
// COOKIE.tmp to COOKIE; a crash in between is completed on the next start.
func checkCookie(ctx context.Context, store metadata.Store, dataDir, bookieID string) (cookie, error) {
	instance, err := clusterInstanceID(ctx, store)
	if err != nil {
		return cookie{}, err
	}
	want := cookie{Version: cookieVersion, BookieID: bookieID, InstanceID: instance}

	dirCookie, dirHas, err := readCookieFile(cookiePath(dataDir))
	if err != nil {
		return cookie{}, err
	}
	var meta cookie
	metaHas := false
	kv, err := store.Get(ctx, metadata.CookieKey(bookieID))
	switch {
	case errors.Is(err, metadata.ErrNotFound):
	case err != nil:
		return cookie{}, fmt.Errorf("bookie: read cookie of %s: %w", bookieID, err)
	default:
		if err := json.Unmarshal(kv.Value, &meta); err != nil {
			return cookie{}, fmt.Errorf("bookie: corrupt cookie of %s in metadata: %w", bookieID, err)
		}
		metaHas = true
	}

	switch {
	case dirHas && metaHas:
		if dirCookie != meta || dirCookie != want {
			return cookie{}, fmt.Errorf("%w: data dir %s has %+v, metadata has %+v, this bookie is %+v",
				ErrCookieMismatch, dataDir, dirCookie, meta, want)
		}
		return want, nil
	case dirHas && !metaHas:
		return cookie{}, fmt.Errorf("%w: data dir %s belongs to bookie %q of cluster instance %s, but the metadata store has no cookie for %q (wrong cluster, or metadata was reset)",
			ErrCookieMismatch, dataDir, dirCookie.BookieID, dirCookie.InstanceID, bookieID)
	case !dirHas && metaHas:
		tmp, tmpHas, _ := readCookieFile(filepath.Join(dataDir, cookieTmpFile))
		if tmpHas && tmp == meta && tmp == want && onlyFile(dataDir, cookieTmpFile) {
			return want, os.Rename(filepath.Join(dataDir, cookieTmpFile), filepath.Join(dataDir, cookieFile))
		}
		return cookie{}, fmt.Errorf("%w: bookie %q is registered in cluster instance %s but data dir %s has no cookie; the directory was wiped or replaced and starting would lose this bookie's replicas (to re-add it as a new, empty bookie, delete the metadata key %s first)",
			ErrCookieMissing, bookieID, meta.InstanceID, dataDir, metadata.CookieKey(bookieID))
	}

	// A new bookie: the directory must hold no data.
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return cookie{}, fmt.Errorf("bookie: create data dir: %w", err)
	}
	if !emptyDir(dataDir, cookieTmpFile) {
		return cookie{}, fmt.Errorf("%w: %s holds files but no cookie; refusing to adopt it as new bookie %q", ErrDirNotEmpty, dataDir, bookieID)
	}
	data, _ := json.Marshal(want)
	if err := writeFileSync(filepath.Join(dataDir, cookieTmpFile), data); err != nil {
		return cookie{}, err
	}
	if _, err := store.Create(ctx, metadata.CookieKey(bookieID), data); err != nil {
		return cookie{}, fmt.Errorf("bookie: register cookie of %s: %w", bookieID, err)
	}
	if err := os.Rename(filepath.Join(dataDir, cookieTmpFile), filepath.Join(dataDir, cookieFile)); err != nil {
		return cookie{}, err
	}
	return want, syncDir(dataDir)
}

// clusterInstanceID returns the cluster's instance id, creating it on first use.
func clusterInstanceID(ctx context.Context, store metadata.Store) (string, error) {
	for {
		kv, err := store.Get(ctx, metadata.InstanceIDKey)
		if err == nil {
			return string(kv.Value), nil
		}
		if !errors.Is(err, metadata.ErrNotFound) {
			return "", fmt.Errorf("bookie: read cluster instance id: %w", err)
		}
		b := make([]byte, 16)
		rand.Read(b)
		if _, err := store.Create(ctx, metadata.InstanceIDKey, []byte(hex.EncodeToString(b))); err != nil && !errors.Is(err, metadata.ErrExists) {
			return "", fmt.Errorf("bookie: create cluster instance id: %w", err)
		}
	}
}

// DataDirID returns the id of the bookie a data directory belongs to (from
// its cookie); ok is false for a directory no bookie has used yet.
func DataDirID(dataDir string) (id string, ok bool, err error) {
	c, ok, err := readCookieFile(cookiePath(dataDir))
	return c.BookieID, ok, err
}

func readCookieFile(path string) (cookie, bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cookie{}, false, nil
	}
	if err != nil {
		return cookie{}, false, fmt.Errorf("bookie: read cookie: %w", err)
	}
	var c cookie
	if err := json.Unmarshal(data, &c); err != nil {
		return cookie{}, false, fmt.Errorf("%w: unreadable cookie file %s: %v", ErrCookieMismatch, path, err)
	}
	return c, true, nil
}

// emptyDir reports whether dir holds no entries other than allowed.
func emptyDir(dir string, allowed string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.Name() != allowed {
			return false
		}
	}
	return true
}

func onlyFile(dir, name string) bool {
	ents, err := os.ReadDir(dir)
	return err == nil && len(ents) == 1 && ents[0].Name() == name
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func cookiePath(dataDir string) string { return filepath.Join(dataDir, cookieFile) }
