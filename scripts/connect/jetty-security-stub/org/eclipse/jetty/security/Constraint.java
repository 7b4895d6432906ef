package org.eclipse.jetty.security;

/** Type shape only (see SecurityHandler): the enums ServletContextHandler's constraint code names. */
public interface Constraint {
    enum Authorization { FORBIDDEN, ALLOWED, ANY_USER, KNOWN_ROLE, SPECIFIC_ROLE, INHERIT }

    enum Transport { SECURE, ANY, INHERIT }

    class Builder {}
}
