/* version: one place for the release number. */
#ifndef KH_VERSION_H
#define KH_VERSION_H

#define KH_VERSION "0.1.0"

#endif
