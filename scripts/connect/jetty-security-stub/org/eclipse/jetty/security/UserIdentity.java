package org.eclipse.jetty.security;

/** Type shape only (see SecurityHandler). */
public interface UserIdentity {
    java.security.Principal getUserPrincipal();
}
