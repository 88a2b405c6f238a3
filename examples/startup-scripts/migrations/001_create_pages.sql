CREATE TABLE pages (id serial PRIMARY KEY, path text UNIQUE NOT NULL, body text NOT NULL);
