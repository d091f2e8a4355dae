package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/strata-mq/strata/client/admin"
)

// readSchemaFile reads a schema file in pulsar-admin's format:
// {"type": "AVRO", "schema": "<definition>", "properties": {...}}.
func readSchemaFile(path string) (admin.SchemaPayload, error) {
	var s admin.SchemaPayload
	if path == "" {
		return s, fmt.Errorf("a schema file is required (-f)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("schema file %s: %w", path, err)
	}
	if s.Type == "" {
		return s, fmt.Errorf("schema file %s: no \"type\"", path)
	}
	return s, nil
}

func newAdminSchemasCmd(a *adminConn) *cobra.Command {
	var version int64
	var all bool
	get := a.command("get TOPIC", "Show the topic's schema: the latest version, one version (--version) or all (--all)", 1, func(x *adminCall) error {
		switch {
		case all:
			vs, err := x.c.Schemas().GetAll(x.ctx, x.args[0])
			if err != nil {
				return err
			}
			return x.print(nonNil(vs))
		case version >= 0:
			v, err := x.c.Schemas().GetVersion(x.ctx, x.args[0], version)
			if err != nil {
				return err
			}
			return x.print(v)
		}
		v, err := x.c.Schemas().Get(x.ctx, x.args[0])
		if err != nil {
			return err
		}
		return x.print(v)
	})
	get.Flags().Int64Var(&version, "version", -1, "the version to show")
	get.Flags().BoolVar(&all, "all", false, "show every version in force")
	var file string
	upload := a.command("upload TOPIC", "Add a schema (pulsar-admin's schema file: type, schema, properties) as the topic's next version", 1, func(x *adminCall) error {
		s, err := readSchemaFile(file)
		if err != nil {
			return err
		}
		v, err := x.c.Schemas().Upload(x.ctx, x.args[0], s)
		if err != nil {
			return err
		}
		return x.print(map[string]int64{"version": v})
	})
	upload.Flags().StringVarP(&file, "filename", "f", "", "schema file (JSON: type, schema, properties)")
	del := a.command("delete TOPIC", "Delete the topic's schema (a later upload starts a new history)", 1, func(x *adminCall) error {
		v, err := x.c.Schemas().Delete(x.ctx, x.args[0])
		if err != nil {
			return err
		}
		return x.print(map[string]int64{"version": v})
	})
	var cfile string
	compat := a.command("compatibility TOPIC", "Test whether a schema file could be added as the topic's next version", 1, func(x *adminCall) error {
		s, err := readSchemaFile(cfile)
		if err != nil {
			return err
		}
		c, err := x.c.Schemas().Compatibility(x.ctx, x.args[0], s)
		if err != nil {
			return err
		}
		return x.print(c)
	})
	compat.Flags().StringVarP(&cfile, "filename", "f", "", "schema file (JSON: type, schema, properties)")
	return group("schemas", "Topics' schemas: show, upload, delete, test compatibility", get, upload, del, compat)
}
