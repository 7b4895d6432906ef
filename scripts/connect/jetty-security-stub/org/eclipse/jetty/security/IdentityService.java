package org.eclipse.jetty.security;

/** Type shape only (see SecurityHandler): referenced by ServletContextHandler, never called by Connect. */
public interface IdentityService {
    interface Association extends AutoCloseable {
        @Override
        void close();
    }

    interface RunAsToken {}

    RunAsToken newRunAsToken(String roleName);
}
