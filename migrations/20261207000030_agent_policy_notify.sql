-- Every replica keeps each agent's permissions_version in memory, so an agent's
-- pass-through call makes no database round trip. A change to an agent row tells every
-- replica at once (its single LISTEN connection); the cache is bypassed whenever that
-- connection is down, so it is never staler than one notification's delivery.
CREATE FUNCTION agents_notify() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('alexandria_agents', OLD.name::text);
    ELSE
        PERFORM pg_notify('alexandria_agents', NEW.name::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER agents_notify
    AFTER INSERT OR UPDATE OR DELETE
    ON agents
    FOR EACH ROW
EXECUTE FUNCTION agents_notify();
