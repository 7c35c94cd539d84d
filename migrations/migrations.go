// Package migrations embeds the SQL schema files applied by `social migrate`.
package migrations

import "embed"

// FS holds the NNNN_name.sql files, applied in name order.
//
//go:embed *.sql
var FS embed.FS
