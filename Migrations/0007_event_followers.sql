-- Live event streams (`GET /v1/runs/{id}/events`) are woken by NOTIFY instead of
-- polling the database. A server with an open stream on a run keeps a row here
-- (renewed while the stream lasts, expiring when its process is gone), and every
-- statement that appends events of a followed run notifies `switchyard_events`
-- with the run id. Runs nobody follows cost one cheap EXISTS per statement.
-- Unlogged: the table describes live processes only; a crash may empty it.
CREATE UNLOGGED TABLE event_followers (
    run_id      uuid NOT NULL,
    follower    uuid NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (run_id, follower)
);

CREATE FUNCTION notify_event_followers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM event_followers) THEN
        PERFORM pg_notify('switchyard_events', a.run_id::text)
        FROM (SELECT DISTINCT run_id FROM appended) a
        WHERE EXISTS (SELECT 1 FROM event_followers f WHERE f.run_id = a.run_id AND f.expires_at > now());
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER run_events_notify_followers AFTER INSERT ON run_events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION notify_event_followers();
