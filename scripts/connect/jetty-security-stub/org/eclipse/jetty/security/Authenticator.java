package org.eclipse.jetty.security;

/** Type shape only (see SecurityHandler). */
public interface Authenticator {
    interface Factory {}
}
