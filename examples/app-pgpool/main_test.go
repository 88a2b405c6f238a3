package main

import (
	"strings"
	"testing"
	"time"
)

func TestPoolConfig(t *testing.T) {
	for _, tt := range []struct {
		name, dsn, size string
		wantSize        int32
		wantApp         string
		wantErr         string
	}{
		{name: "defaults", wantSize: 2, wantApp: appName},
		{name: "size", size: "5", wantSize: 5, wantApp: appName},
		{name: "application_name from the URL", dsn: "postgres://u@127.0.0.1:5432/db?application_name=mine", wantSize: 2, wantApp: "mine"},
		{name: "size not a number", size: "two", wantErr: `PGPOOL_SIZE "two"`},
		{name: "size zero", size: "0", wantErr: `PGPOOL_SIZE "0"`},
		{name: "size negative", size: "-3", wantErr: `PGPOOL_SIZE "-3"`},
		{name: "size too large", size: "1000000", wantErr: `PGPOOL_SIZE "1000000"`},
		{name: "bad URL", dsn: "postgres://u@127.0.0.1:notaport/db", wantErr: "DATABASE_URL: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DATABASE_URL", tt.dsn)
			t.Setenv("PGPOOL_SIZE", tt.size)
			t.Setenv("PGAPPNAME", "")
			cfg, err := poolConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("poolConfig() error = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("poolConfig(): %v", err)
			}
			if cfg.MaxConns != tt.wantSize || cfg.MinConns != tt.wantSize {
				t.Errorf("pool size min %d max %d, want %d", cfg.MinConns, cfg.MaxConns, tt.wantSize)
			}
			if got := cfg.ConnConfig.RuntimeParams["application_name"]; got != tt.wantApp {
				t.Errorf("application_name %q, want %q", got, tt.wantApp)
			}
			if ct := cfg.ConnConfig.ConnectTimeout; ct <= 0 || ct > 5*time.Second {
				t.Errorf("connect timeout %s, want 0 < t <= 5s", ct)
			}
		})
	}
}
