package org.eclipse.jetty.security;

import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;

/**
 * Type shape only (see SecurityHandler). With security never enabled, no request carries an
 * authentication state, so lookups find nothing and login/logout do nothing.
 */
public interface AuthenticationState extends Request.AuthenticationState {
    interface Deferred extends AuthenticationState {}

    interface ResponseSent extends AuthenticationState {}

    interface Succeeded extends AuthenticationState {
        String getAuthenticationType();

        UserIdentity getUserIdentity();

        boolean isUserInRole(String role);
    }

    static AuthenticationState getAuthenticationState(Request request) {
        Object state = request.getAttribute(AuthenticationState.class.getName());
        return state instanceof AuthenticationState ? (AuthenticationState) state : null;
    }

    static AuthenticationState getUndeferredAuthenticationState(Request request) {
        return getAuthenticationState(request);
    }

    static Succeeded login(String username, String password, Request request, Response response) {
        return null;
    }

    static boolean logout(Request request, Response response) {
        return false;
    }
}
