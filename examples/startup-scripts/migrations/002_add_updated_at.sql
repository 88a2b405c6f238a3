ALTER TABLE pages ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
