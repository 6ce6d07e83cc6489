"""Resource types, found through the entry-point group ``wolfpack.resource_types``.

``base``                 the ResourceType interface, property schemas, the plug-in loader
``generic_application``  a command line run as a supervised process group
``generic_script``       a script with online/offline/looksalive/isalive actions, or an OCF agent
``ocf``                  OCF exit codes, their severities, agent meta-data
``health``               the health checks of Generic Application (command, TCP, HTTP)
``process_groups``       process groups on Linux: spawn, signal, wait until empty
"""
