package broker

import (
	"google.golang.org/protobuf/proto"

	"github.com/strata-mq/strata/api/clientpb"
	"github.com/strata-mq/strata/api/pulsarpb"
	"github.com/strata-mq/strata/internal/naming"
	"github.com/strata-mq/strata/tenants/schema"
)

// Schemas over Pulsar's protocol: GET_SCHEMA, GET_OR_CREATE_SCHEMA and the
// conversions of declared schemas.

// wireSchema converts a declared schema to the gRPC API's form, which the
// broker's producers and consumers take; nil for none (or type None: raw
// bytes). The protocol's type codes are exactly the registry's.
func wireSchema(s *pulsarpb.Schema) *clientpb.Schema {
	if s == nil || s.GetType() == pulsarpb.Schema_None {
		return nil
	}
	name, _ := schema.TypeName(int32(s.GetType()))
	return &clientpb.Schema{Type: name, Data: s.GetSchemaData(), Properties: kvMap(s.GetProperties())}
}

// toWireSchema converts a stored version for GET_SCHEMA.
func toWireSchema(topic naming.Topic, v schema.Version) *pulsarpb.Schema {
	code, _ := schema.TypeCode(v.Type)
	out := &pulsarpb.Schema{Name: proto.String(topic.LocalName()), SchemaData: v.Data, Type: pulsarpb.Schema_Type(code).Enum()}
	if out.SchemaData == nil {
		out.SchemaData = []byte{}
	}
	for k, val := range v.Properties {
		out.Properties = append(out.Properties, &pulsarpb.KeyValue{Key: proto.String(k), Value: proto.String(val)})
	}
	return out
}

func (pc *pulsarConn) getSchema(g *pulsarpb.CommandGetSchema) {
	resp := &pulsarpb.CommandGetSchemaResponse{RequestId: proto.Uint64(g.GetRequestId())}
	t, err := naming.ParseTopic(g.GetTopic())
	var v schema.Version
	if err == nil {
		err = pc.b.authz.CanLookup(pc.ctx, pc.role, t)
	}
	var version int64
	if err == nil {
		version, err = parseVersion(g.GetSchemaVersion())
	}
	if err == nil {
		if version < 0 {
			v, err = pc.b.schemas.Latest(pc.ctx, schemaTopic(t))
		} else {
			v, err = pc.b.schemas.Get(pc.ctx, schemaTopic(t), version)
		}
	}
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = pulsarError(err).Enum(), proto.String(err.Error())
	} else {
		resp.Schema, resp.SchemaVersion = toWireSchema(t, v), versionBytes(v.Version)
	}
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: resp})
}

func (pc *pulsarConn) getOrCreateSchema(g *pulsarpb.CommandGetOrCreateSchema) {
	resp := &pulsarpb.CommandGetOrCreateSchemaResponse{RequestId: proto.Uint64(g.GetRequestId())}
	t, err := naming.ParseTopic(g.GetTopic())
	if err == nil {
		err = pc.b.authz.CanProduce(pc.ctx, pc.role, t)
	}
	var version []byte
	if err == nil {
		version, err = pc.b.schemaForProducer(pc.ctx, t, grpcSchema(wireSchema(g.GetSchema())))
	}
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = pulsarError(err).Enum(), proto.String(err.Error())
	} else {
		resp.SchemaVersion = version
	}
	pc.reply(&pulsarpb.BaseCommand{Type: pulsarpb.BaseCommand_GET_OR_CREATE_SCHEMA_RESPONSE.Enum(), GetOrCreateSchemaResponse: resp})
}
